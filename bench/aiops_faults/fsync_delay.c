/* LD_PRELOAD shim: a slow disk at the syscall level, in the spirit of libfiu / CharybdeFS.
 *
 * Wraps fsync(2) and fdatasync(2): before the real call, sleeps for the number of microseconds
 * written (as decimal text) in the file named by $FSYNC_DELAY_FILE (re-read at most every 100 ms,
 * so the bench can raise the delay while the process runs). No file, or 0: no delay.
 * Build: gcc -shared -fPIC -O2 -o fsync_delay.so fsync_delay.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long cached_us = 0;
static struct timespec cached_at = {0, 0};

static long delay_us(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long elapsed_ms = (now.tv_sec - cached_at.tv_sec) * 1000 + (now.tv_nsec - cached_at.tv_nsec) / 1000000;
    if (cached_at.tv_sec != 0 && elapsed_ms < 100) return cached_us;
    cached_at = now;
    const char *path = getenv("FSYNC_DELAY_FILE");
    long us = 0;
    if (path) {
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%ld", &us) != 1) us = 0;
            fclose(f);
        }
    }
    cached_us = us > 0 ? us : 0;
    return cached_us;
}

static void stall(void) {
    long us = delay_us();
    if (us > 0) {
        struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
}

int fsync(int fd) {
    static int (*real)(int) = NULL;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    stall();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int) = NULL;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    stall();
    return real(fd);
}
