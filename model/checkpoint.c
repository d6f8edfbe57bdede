#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../kernels/err.h"
#include "embedded.h"

int checkpoint_mkdirs(const char *dir) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return err_set("%s: path too long", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) return err_set("%s: cannot create: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST) return err_set("%s: cannot create: %s", buf, strerror(errno));
    return 0;
}

int checkpoint_dir_nonempty(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb)) return 0;
    if (!S_ISDIR(sb.st_mode)) return err_set("%s: exists and is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d) return err_set("%s: cannot read: %s", dir, strerror(errno));
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)))
        found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return found;
}

// reads a whole file; NULL (err_set) on failure
static char *checkpoint_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n) {
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
        err_set("%s: read failed", path);
    }
    fclose(f);
    return buf;
}

static int checkpoint_copy_one(const char *src_dir, const char *dst_dir, const char *file) {
    char src[4200], dst[4200];
    snprintf(dst, sizeof dst, "%s/%s", dst_dir, file);
    struct stat sb;
    char *buf = NULL;
    const char *data;
    size_t len = 0;
    if (src_dir && snprintf(src, sizeof src, "%s/%s", src_dir, file) > 0 && stat(src, &sb) == 0) {
        if (!(buf = checkpoint_read(src, &len))) return -1;
        data = buf;
    } else {
        char name[128];
        snprintf(name, sizeof name, "qwen3-tokenizer/%s", file);
        if (!(data = embedded_file(name, &len)))
            return err_set("embedded file %s is missing from the binary", name);
    }
    FILE *g = fopen(dst, "wb");
    int ok = g && fwrite(data, 1, len, g) == len;
    if (g) ok = fclose(g) == 0 && ok;
    free(buf);
    if (!ok) return err_set("%s: write failed: %s", dst, strerror(errno));
    return 0;
}

int checkpoint_write_tokenizer(const char *src_dir, const char *dst_dir) {
    if (checkpoint_copy_one(src_dir, dst_dir, "tokenizer.json")) return -1;
    return checkpoint_copy_one(src_dir, dst_dir, "tokenizer_config.json");
}
