/* demo-hello: a tiny greeting program, linked statically so a distroless image needs no libc. */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *who = argc > 1 ? argv[1] : "distroless";
    printf("Hello from %s! (uid %d)\n", who, (int)getuid());
    return 0;
}
