/* The example's program: built statically (gcc -static) so the image needs
   no libc of its own. It prints a greeting, the user it runs as, and the
   app files it can see. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    const char *greeting = getenv("GREETING");
    printf("%s from envbuild (uid=%d)\n", greeting ? greeting : "hello", (int)getuid());
    FILE *f = fopen("/home/appuser/app/message.txt", "r");
    if (f) {
        char line[256];
        if (fgets(line, sizeof line, f)) printf("app says: %s", line);
        fclose(f);
    }
    return 0;
}
