/*
 * Unit tests for log: the line format, and the limiter that keeps a
 * message repeating once per event from flooding stderr.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* stderr goes to a temporary file for the duration of one test. */
static FILE *capture;
static int saved_stderr = -1;

static int
capture_start(void **state)
{
    (void)state;
    fflush(stderr);
    saved_stderr = dup(fileno(stderr));
    capture = tmpfile();
    if (saved_stderr < 0 || capture == NULL)
        return -1;
    dup2(fileno(capture), fileno(stderr));
    log_set_level(LOG_LEVEL_INFO);
    return 0;
}

static int
capture_stop(void **state)
{
    (void)state;
    fflush(stderr);
    dup2(saved_stderr, fileno(stderr));
    close(saved_stderr);
    fclose(capture);
    return 0;
}

/* Everything written to stderr since the test started. */
static const char *
captured(void)
{
    static char text[8192];
    size_t n;

    fflush(stderr);
    rewind(capture);
    n = fread(text, 1, sizeof(text) - 1, capture);
    text[n] = '\0';
    return text;
}

static void
test_first_passes_then_one_per_interval(void **state)
{
    struct log_limit l = {0};
    unsigned held = 99;

    (void)state;
    assert_true(log_limit_pass(&l, 100.0, &held));
    assert_int_equal(held, 0);
    /* Within the interval: held back and counted. */
    for (int i = 0; i < 5; i++)
        assert_false(log_limit_pass(&l, 100.0 + i, &held));
    assert_false(log_limit_pass(&l, 100.0 + LOG_LIMIT_INTERVAL - 0.001, &held));
    /* At the end of the interval the next one goes out with the count. */
    assert_true(log_limit_pass(&l, 100.0 + LOG_LIMIT_INTERVAL, &held));
    assert_int_equal(held, 6);
    /* The count starts over, and so does the interval. */
    assert_false(log_limit_pass(&l, 100.0 + LOG_LIMIT_INTERVAL + 1, &held));
    assert_true(log_limit_pass(&l, 200.0, &held));
    assert_int_equal(held, 1);
    /* A quiet spell: the next one passes at once with nothing held. */
    assert_true(log_limit_pass(&l, 500.0, &held));
    assert_int_equal(held, 0);
}

static void
test_time_zero_is_a_time_like_any_other(void **state)
{
    struct log_limit l = {0};
    unsigned held;

    (void)state;
    /* A loop whose clock starts at 0 still gets its first message. */
    assert_true(log_limit_pass(&l, 0.0, &held));
    assert_false(log_limit_pass(&l, 0.0, &held));
}

static void
test_log_limited_lines(void **state)
{
    struct log_limit l = {0};

    (void)state;
    for (int i = 0; i < 1000; i++)
        log_limited(&l, 10.0 + i * 0.001, LOG_LEVEL_WARN, "accept: %s",
                    "Too many open files");
    log_limited(&l, 10.0 + LOG_LIMIT_INTERVAL, LOG_LEVEL_WARN, "accept: %s",
                "Too many open files");
    log_limited(&l, 10.0 + LOG_LIMIT_INTERVAL + 1, LOG_LEVEL_WARN, "x");
    log_limited(&l, 10.0 + 2 * LOG_LIMIT_INTERVAL, LOG_LEVEL_WARN, "last");
    assert_string_equal(captured(),
                        "WARN accept: Too many open files\n"
                        "WARN accept: Too many open files "
                        "(999 similar messages held back)\n"
                        "WARN last (1 similar message held back)\n");
}

static void
test_log_limited_below_level_counts_nothing(void **state)
{
    struct log_limit l = {0};

    (void)state;
    log_limited(&l, 1.0, LOG_LEVEL_DEBUG, "hidden");
    log_limited(&l, 1.0, LOG_LEVEL_DEBUG, "hidden");
    log_limited(&l, 1.0, LOG_LEVEL_INFO, "shown");
    assert_string_equal(captured(), "INFO shown\n");
}

static void
test_long_line_is_cut_with_its_newline(void **state)
{
    struct log_limit l = {0};
    char big[3000];
    const char *out;

    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_msg(LOG_LEVEL_ERROR, "%s", big);
    log_limited(&l, 1.0, LOG_LEVEL_ERROR, "%s", big);
    log_limited(&l, 2.0, LOG_LEVEL_ERROR, "%s", big);
    log_limited(&l, 20.0, LOG_LEVEL_ERROR, "%s", big);
    out = captured();
    /* Three lines, each cut to the line buffer and ending in a newline. */
    assert_int_equal(strlen(out), 3 * 1023);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(out[i * 1023 - 1], '\n');
    assert_memory_equal(out, "ERROR aaa", 9);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_passes_then_one_per_interval),
        cmocka_unit_test(test_time_zero_is_a_time_like_any_other),
        cmocka_unit_test_setup_teardown(test_log_limited_lines, capture_start,
                                        capture_stop),
        cmocka_unit_test_setup_teardown(
            test_log_limited_below_level_counts_nothing, capture_start,
            capture_stop),
        cmocka_unit_test_setup_teardown(test_long_line_is_cut_with_its_newline,
                                        capture_start, capture_stop),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
