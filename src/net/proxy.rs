//! Which proxy a request goes through: the conventional variables, with
//! loopback always direct.
//!
//! `HTTP_PROXY` / `http_proxy` for `http://` URLs, `HTTPS_PROXY` /
//! `https_proxy` for `https://` ones, `ALL_PROXY` / `all_proxy` for either
//! when the scheme's own is unset; `NO_PROXY` / `no_proxy` lists the hosts
//! reached directly (names match their subdomains, addresses may carry a
//! `/prefix`, `*` is every host). The uppercase spelling wins where both
//! are set. As in a CGI program (`REQUEST_METHOD` set), `HTTP_PROXY` is
//! ignored there, since a request's `Proxy:` header can set it.
//!
//! Unlike reqwest's own reading of these variables, `localhost`,
//! `127.0.0.0/8` and `::1` are always direct (as Go's `net/http` does): a
//! loopback mirror, cache or registry is this machine, which a proxy
//! elsewhere cannot reach, and a user with a proxy configured should not
//! have to know to list them.

use reqwest::{NoProxy, Proxy};

use super::{redact, NetError};

/// Always reached directly, whatever `NO_PROXY` says.
const LOOPBACK: &str = "localhost,127.0.0.0/8,::1";

/// The proxies the variables that `var` looks up name, in the order reqwest
/// tries them (the scheme's own first, then the one for all).
pub(crate) fn from_variables(var: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Proxy>, NetError> {
    let first = |names: [&'static str; 2]| -> Option<(&'static str, String)> {
        names
            .into_iter()
            .find_map(|n| var(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
    };
    let no_proxy = match first(["NO_PROXY", "no_proxy"]) {
        Some((_, list)) => format!("{list},{LOOPBACK}"),
        None => LOOPBACK.to_owned(),
    };
    let cgi = var("REQUEST_METHOD").is_some();
    let mut proxies = Vec::new();
    let mut add = |name: &str, value: &str, make: fn(&str) -> reqwest::Result<Proxy>| {
        let proxy = make(value).map_err(|e| NetError::Proxy {
            variable: name.to_owned(),
            value: redact(value),
            message: redact(&e.to_string()),
        })?;
        proxies.push(proxy.no_proxy(NoProxy::from_string(&no_proxy)));
        Ok::<(), NetError>(())
    };
    if !cgi {
        if let Some((name, value)) = first(["HTTP_PROXY", "http_proxy"]) {
            add(name, &value, |v| Proxy::http(v))?;
        }
    }
    if let Some((name, value)) = first(["HTTPS_PROXY", "https_proxy"]) {
        add(name, &value, |v| Proxy::https(v))?;
    }
    if let Some((name, value)) = first(["ALL_PROXY", "all_proxy"]) {
        add(name, &value, |v| Proxy::all(v))?;
    }
    Ok(proxies)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::super::{Client, Policy};

    /// A loopback server that answers every request with `body` and
    /// records each request line.
    fn server(body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                log.lock().unwrap().push(line.trim_end().to_owned());
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                        break;
                    }
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (format!("127.0.0.1:{}", addr.port()), seen)
    }

    fn client(vars: &[(&str, &str)]) -> Client {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // One attempt: a direct request to a name that does not resolve
        // fails at once.
        let policy = Policy {
            attempts: 1,
            ..Policy::default()
        };
        Client::with_policy_and_variables(policy, &|k| vars.get(k).cloned()).unwrap()
    }

    #[test]
    fn loopback_is_reached_directly_and_other_hosts_through_the_proxy() {
        let (proxy, through_proxy) = server("from the proxy");
        let (origin, direct) = server("from the origin");
        let client = client(&[("HTTP_PROXY", &format!("http://{proxy}")), ("NO_PROXY", "")]);

        let doc = client
            .get(&format!("http://{origin}/a"), None, None)
            .unwrap();
        assert_eq!(doc.body, b"from the origin");
        let doc = client
            .get(
                &format!("http://localhost:{}/b", origin.split(':').nth(1).unwrap()),
                None,
                None,
            )
            .unwrap();
        assert_eq!(doc.body, b"from the origin");
        assert_eq!(
            *direct.lock().unwrap(),
            ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]
        );

        let doc = client.get("http://files.invalid/c", None, None).unwrap();
        assert_eq!(doc.body, b"from the proxy");
        assert_eq!(
            *through_proxy.lock().unwrap(),
            ["GET http://files.invalid/c HTTP/1.1"]
        );
    }

    #[test]
    fn no_proxy_hosts_and_cgi_programs_skip_the_http_proxy() {
        let (proxy, through_proxy) = server("from the proxy");
        let proxy_url = format!("http://{proxy}");
        // NO_PROXY names the host (and its subdomains): direct, which for
        // a name that does not resolve is a connection error, not the
        // proxy's answer.
        let c = client(&[("http_proxy", &proxy_url), ("no_proxy", "invalid")]);
        assert!(c.get("http://files.invalid/x", None, None).is_err());
        let c = client(&[("HTTP_PROXY", &proxy_url), ("REQUEST_METHOD", "GET")]);
        assert!(c.get("http://files.invalid/y", None, None).is_err());
        assert!(through_proxy.lock().unwrap().is_empty());
        // ALL_PROXY serves http:// when HTTP_PROXY is unset; a value
        // without a scheme is an http:// proxy.
        let c = client(&[("ALL_PROXY", &proxy)]);
        assert_eq!(
            c.get("http://files.invalid/z", None, None).unwrap().body,
            b"from the proxy"
        );
    }

    #[test]
    fn a_proxy_variable_that_is_not_a_url_is_an_error_naming_it() {
        let vars: HashMap<String, String> =
            [("HTTPS_PROXY".to_string(), "http://[bad".to_string())].into();
        let e = super::from_variables(&|k| vars.get(k).cloned()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("HTTPS_PROXY") && text.contains("http://[bad"),
            "{text}"
        );
    }
}
