/* replay_corpus.c: runs a fuzz target over every file of its corpus directories (TAP), so the
 * corpus and every crash ever found are replayed by the normal test suite. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int n = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            printf("not ok %d - cannot open corpus %s\n", ++n, argv[i]);
            continue;
        }
        size_t files = 0, bytes = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            hr_buf_t b;
            hr_buf_init(&b);
            hr_err_t err = {0};
            if (hr_read_file(path, &b, &err) == 0) {
                LLVMFuzzerTestOneInput(b.data ? b.data : (const uint8_t *)"", b.len);
                files++, bytes += b.len;
            }
            hr_buf_free(&b);
        }
        closedir(d);
        /* The first directory is the seed corpus and must not be empty; later ones (found
         * crashes) may be. */
        printf("%s %d - %zu inputs (%zu bytes) of %s ran without a crash or a broken property\n",
               files || i > 1 ? "ok" : "not ok", ++n, files, bytes, argv[i]);
    }
    printf("1..%d\n", n);
    return 0;
}
