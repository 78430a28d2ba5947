/* The trainer layer: GPT-2 model, AdamW, LR schedule, checkpoints, the train
 * loop and the subcommands of the `ctrain` CLI. trainer/main.c dispatches to
 * the ct_cmd_* entry points below; each returns the process exit code
 * (0 success, 1 runtime error, 2 usage error). */
#ifndef CT_TRAINER_TRAINER_H
#define CT_TRAINER_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "comm/comm.h"
#include "core/config.h"
#include "core/status.h"

typedef struct {
    int64_t steps_run;   /* optimizer steps taken by this call */
    int64_t final_step;  /* steps completed overall (after resume) */
    float last_loss;     /* train loss of the last step */
    float last_val_loss; /* -1 if never evaluated */
    float unigram_loss;  /* validation loss of a unigram model, -1 if unknown */
    int64_t skipped_steps; /* updates skipped for a non-finite loss or gradient */
    int64_t spikes;      /* loss spikes logged */
} ct_train_summary_t;

/* Set (to the signal number) by the CLI's SIGTERM/SIGUSR1/SIGINT handler:
 * ct_train_run then saves a checkpoint after the current step and returns
 * CT_ERR_INTERRUPTED, on every rank together. */
extern volatile sig_atomic_t ct_train_stop_signal;

/* Runs training as configured, on the process groups g (NULL: one process;
 * collective over g's world otherwise). stop_at > 0 ends the run after that
 * many completed steps (with a checkpoint), as a preemption would. */
ct_status_t ct_train_run(const ct_config_t *cfg, const ct_comm_groups_t *g, int64_t stop_at,
                         ct_train_summary_t *summary_p);

/* `ctrain train CONFIG [--set k=v]... [--stop-at N]` */
int ct_cmd_train(int argc, char **argv);
/* `ctrain reshard --tp N SRC_CKPT DST_CKPT` */
int ct_cmd_reshard(int argc, char **argv);
/* `ctrain sample CKPT_DIR [options]` */
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

#endif
