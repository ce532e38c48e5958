"""The example app: uses the hello_greeter wheel installed in the image."""
from hello_greeter import greet

if __name__ == "__main__":
    print(greet("envbuild"))
