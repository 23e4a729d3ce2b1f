/*
 * main: command line, start order, signals, exit codes.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "-V") == 0) {
        printf("ferry %s\n", "0.1.0");
        return 0;
    }
    return 1;
}
