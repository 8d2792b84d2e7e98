/* The C CGI program of the benchmark: the smallest useful CGI response.
 * Used by every server's "cgi-c" case and by spawnloop (the raw spawn rate). */
#include <unistd.h>

int main(void)
{
    static const char out[] = "Content-Type: text/plain\r\n\r\nhello from C\n";
    return write(1, out, sizeof out - 1) == (ssize_t)(sizeof out - 1) ? 0 : 1;
}
