/* The `ctrain` commands and the argument helpers they share. cli/main.c
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
/* `ctrain plot RUN_DIR... [-o OUT.svg]`: SVG of loss/val_loss, lr and tok/s vs step. */
int ct_cmd_plot(int argc, char **argv);
/* `ctrain tokenize ...`: train a BPE vocabulary, encode text to shards,
 * decode shards to text. argv[0] is "tokenize". */
int ct_cmd_tokenize(int argc, char **argv);

/* If argv[*i] is `--set KEY=VALUE` (two words) or `--set=KEY=VALUE`,
 * appends KEY=VALUE to sets[*n_sets] (sets has room for argc entries),
 * moves *i past it and returns 1; otherwise returns 0. */
int ct__cli_take_set(int argc, char **argv, int *i, const char **sets, int *n_sets);

#endif
