/* The trainer layer: GPT-2 model, AdamW, LR schedule, checkpoints, the train
 * loop and the subcommands of the `ctrain` CLI. trainer/main.c dispatches to
 * the ct_cmd_* entry points below; each returns the process exit code. */
#ifndef CT_TRAINER_TRAINER_H
#define CT_TRAINER_TRAINER_H

/* `ctrain tokenize ...`: train a BPE vocabulary, encode text to shards,
 * decode shards to text. argv[0] is "tokenize". */
int ct_cmd_tokenize(int argc, char **argv);

#endif
