/* The one argument parser of every ctrain command: options from a table
 * ("--name VALUE" or "--name=VALUE", flags, repeated --set KEY=VALUE), --help,
 * "--" to end options, "-" as a positional (standard input), and positional
 * counts; usage errors in one form, exit status 2. Left out: short option
 * bundles (-abc) and abbreviations of long names. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"

int ct_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ctrain %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n---> HINT: run 'ctrain %s --help'\n", cmd);
    return 2;
}

/* Matches option o at argv[*i]: 1 matched (value, if any, in *val_p), 0 not
 * this option, -1 its value is missing. */
static int take(const ct_opt_t *o, int argc, char **argv, int *i, const char **val_p)
{
    const char *arg = argv[*i];
    for (int k = 0; k < 2; k++) {
        const char *name = k ? o->alias : o->name;
        if (!name) continue;
        size_t n = strlen(name);
        if (strncmp(arg, name, n) != 0) continue;
        if (o->kind == CT_OPT_FLAG || o->kind == CT_OPT_PAIR) {
            if (arg[n] != 0) continue;
            if (o->kind == CT_OPT_FLAG) return 1;
            if (*i + 2 >= argc) return -1;
            ((const char **)o->dst)[0] = argv[++*i];
            ((const char **)o->dst)[1] = argv[++*i];
            *val_p = "";
            return 1;
        }
        if (arg[n] == '=') {
            *val_p = arg + n + 1;
            return 1;
        }
        if (arg[n] != 0) continue;
        if (*i + 1 >= argc) return -1;
        *val_p = argv[++*i];
        return 1;
    }
    return 0;
}

int ct_args_parse(ct_args_t *a, int argc, char **argv, int first)
{
    a->pos = calloc((size_t)argc + 1, sizeof *a->pos);
    a->sets = calloc((size_t)argc + 1, sizeof *a->sets);
    a->n_pos = a->n_sets = 0;
    if (!a->pos || !a->sets) {
        CT_LOG_ERROR("out of memory");
        return 1;
    }
    int only_pos = 0, stdin_seen = 0;
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (only_pos || arg[0] != '-' || strcmp(arg, "-") == 0) {
            if (strcmp(arg, "-") == 0 && stdin_seen++)
                return ct_cli_usage_error(a->cmd, "'-' (standard input) given twice");
            a->pos[a->n_pos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(a->usage, stdout);
            return 0;
        }
        int matched = 0;
        for (int k = 0; k < a->n_opts && !matched; k++) {
            const ct_opt_t *o = &a->opts[k];
            const char *val = NULL;
            int r = take(o, argc, argv, &i, &val);
            if (r == 0) continue;
            if (r < 0 || ((o->kind == CT_OPT_STR || o->kind == CT_OPT_SET) && !*val))
                return ct_cli_usage_error(a->cmd, "%s needs %s", o->name,
                                           o->kind == CT_OPT_PAIR ? "two values" : "a value");
            if (o->kind == CT_OPT_FLAG) *(int *)o->dst = 1;
            else if (o->kind == CT_OPT_SET) a->sets[a->n_sets++] = val;
            else if (o->kind == CT_OPT_STR) *(const char **)o->dst = val;
            matched = 1;
        }
        if (!matched) return ct_cli_usage_error(a->cmd, "unknown option '%s'", arg);
    }
    if (a->n_pos < a->min_pos)
        return ct_cli_usage_error(a->cmd, "missing %s", a->pos_names);
    if (a->max_pos >= 0 && a->n_pos > a->max_pos)
        return ct_cli_usage_error(a->cmd, "unexpected argument '%s'", a->pos[a->max_pos]);
    return -1;
}

void ct_args_free(ct_args_t *a)
{
    free(a->pos);
    free(a->sets);
    a->pos = a->sets = NULL;
}

int ct_args_int(const char *cmd, const char *name, const char *s, long long min, long long max,
                long long *v_p)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return ct_cli_usage_error(cmd, "%s: expected an integer in [%lld, %lld], got '%s'", name,
                                   min, max, s);
    *v_p = v;
    return -1;
}

int ct_args_double(const char *cmd, const char *name, const char *s, double min, double *v_p)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > min))
        return ct_cli_usage_error(cmd, "%s: expected a number above %g, got '%s'", name, min, s);
    *v_p = v;
    return -1;
}
