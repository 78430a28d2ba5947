/* Checkpoints: a directory per step, RUN_DIR/ckpt/step_00000100/, holding
 * params.bin (the flat parameter arena), optim.bin (AdamW m then v) and
 * manifest.yaml. The manifest records the format, step, data position, RNG
 * state, model dims, the resolved config and a tensor table (file, offset,
 * bytes, crc32). It is written last, through manifest.yaml.tmp, fsync and
 * rename: a directory without manifest.yaml is an incomplete save and is
 * never picked by `resume: auto`. Private to trainer/. */
#ifndef CT_TRAINER_CKPT_H
#define CT_TRAINER_CKPT_H

#include <stdint.h>

#include "core/config.h"
#include "trainer/gpt2.h"

typedef struct {
    int64_t step;        /* optimizer steps completed */
    int64_t samples;     /* data position: samples consumed from the order */
    uint64_t sample_rng; /* state of the text-sampling RNG */
} ct_ckpt_state_t;

/* Saves to RUN_DIR/ckpt/step_%08d; *dir_p (optional) gets a malloc'd path. */
ct_status_t ct_ckpt_save(const char *run_dir, const ct_gpt2_t *m, const ct_config_t *cfg,
                         const ct_ckpt_state_t *state, char **dir_p);
/* Newest complete checkpoint under RUN_DIR/ckpt, as a malloc'd path;
 * CT_ERR_NOT_FOUND (not logged) when there is none. */
ct_status_t ct_ckpt_find_latest(const char *run_dir, char **dir_p);
/* Reads the config stored in a checkpoint's manifest into cfg. */
ct_status_t ct_ckpt_read_config(const char *dir, ct_config_t *cfg);
/* Loads parameters (and AdamW state if with_optim) into a model whose dims
 * must match, verifying every checksum. */
ct_status_t ct_ckpt_load(const char *dir, ct_gpt2_t *m, int with_optim, ct_ckpt_state_t *state_p);
/* Deletes complete checkpoints older than the newest keep_last (> 0). */
void ct_ckpt_prune(const char *run_dir, int keep_last);

#endif
