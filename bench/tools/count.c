/* Upload CGI of the streaming-memory test: reads stdin to EOF and prints the
 * number of bytes it got. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    static char buf[1 << 16];
    unsigned long long total = 0;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0)
            return 1;
        if (n == 0)
            break;
        total += (unsigned long long)n;
    }
    printf("Content-Type: text/plain\r\n\r\n%llu\n", total);
    return 0;
}
