/* The `ctrain` commands and the argument parser they share. cli/main.c
 * dispatches to the ct_cmd_* entry points; each returns the process exit
 * code (0 success, 1 runtime error, 2 usage error). Private to cli/. */
#ifndef CT_CLI_CLI_H
#define CT_CLI_CLI_H

/* `ctrain train CONFIG [--set k=v]... [--stop-at N]` */
int ct_cmd_train(int argc, char **argv);
/* `ctrain reshard --tp N SRC_CKPT DST_CKPT` */
int ct_cmd_reshard(int argc, char **argv);
/* `ctrain sample CKPT_DIR|RUN_DIR [options]` */
int ct_cmd_sample(int argc, char **argv);
/* `ctrain export --format hf CKPT_DIR OUT_DIR` */
int ct_cmd_export(int argc, char **argv);
/* `ctrain import HF_DIR OUT_DIR [--set k=v]...` */
int ct_cmd_import(int argc, char **argv);
/* `ctrain doctor CONFIG [--set k=v]...`: checks on every rank that a job as
 * configured can start (MPI, device, all-reduce per group, data, ckpt dir);
 * rank 0 prints a table. 0 when all pass, 1 when any fails. */
int ct_cmd_doctor(int argc, char **argv);
/* `ctrain plan CONFIG [--set k=v]... [--sp] [--detail] [--gpu-mem GIB]`: the
 * memory per rank and FLOPs per step of a layout, without a GPU. */
int ct_cmd_plan(int argc, char **argv);
/* `ctrain plot RUN_DIR... [-o OUT.svg]`: SVG of loss/val_loss, lr and tok/s vs step. */
int ct_cmd_plot(int argc, char **argv);
/* `ctrain tokenize ...`: train a BPE vocabulary, encode text to shards,
 * decode shards to text. argv[0] is "tokenize". */
int ct_cmd_tokenize(int argc, char **argv);

/* ---- the argument parser (cli/args.c), shared by every command ---------- */
typedef enum {
    CT_OPT_STR,  /* --name VALUE or --name=VALUE into *(const char **)dst */
    CT_OPT_FLAG, /* --name: *(int *)dst = 1 */
    CT_OPT_SET,  /* --set KEY=VALUE, repeatable: appended to sets */
    CT_OPT_PAIR, /* --name A B into ((const char **)dst)[0..1] */
} ct_opt_kind_t;

typedef struct {
    const char *name;  /* "--out" */
    const char *alias; /* "-o", or NULL */
    ct_opt_kind_t kind;
    void *dst;
} ct_opt_t;

typedef struct {
    const char *cmd;       /* "train", "tokenize encode": messages say "ctrain <cmd>: " */
    const char *usage;     /* --help prints it to stdout */
    const ct_opt_t *opts;
    int n_opts;
    int min_pos, max_pos;  /* positional count bounds; max_pos -1: no bound */
    const char *pos_names; /* for "missing <pos_names>" */
    /* set by ct_args_parse, freed by ct_args_free: positionals ("-" is one)
     * and --set values, in order */
    const char **pos, **sets;
    int n_pos, n_sets;
} ct_args_t;

/* Parses argv[first..argc): options from a->opts, -h/--help, "--" (the rest
 * are positionals), positionals within [min_pos, max_pos]. Returns -1 to go
 * on, or the exit code: 0 after --help, 2 after a usage error (printed as
 * "ctrain CMD: cause" and a HINT), 1 out of memory. Call ct_args_free in
 * every case. */
int ct_args_parse(ct_args_t *a, int argc, char **argv, int first);
void ct_args_free(ct_args_t *a);
/* Prints a usage error of command cmd ("ctrain CMD: cause", then a HINT to
 * run CMD --help) to stderr; returns 2. */
int ct_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The decimal integer s of option `name` of command cmd, in [min, max], into
 * *v_p, or a usage error: -1 to go on, else 2. */
int ct_args_int(const char *cmd, const char *name, const char *s, long long min, long long max,
                long long *v_p);
/* The number s of option `name`, above min, into *v_p: -1 or 2 as above. */
int ct_args_double(const char *cmd, const char *name, const char *s, double min, double *v_p);

#endif
