/* Checkpoints: a directory per step, RUN_DIR/ckpt/step_00000100/, holding
 *   params_tp<r>.bin        the flat parameter shard of TP rank r,
 *   optim_tp<r>.bin         AdamW m then v of TP rank r (no ZeRO), or
 *   optim_tp<r>_z<s>.bin    ZeRO shard s of it,
 *   manifest.yaml           format, step, data position, RNG state, model
 *                           dims, parallel layout, the resolved config and a
 *                           tensor table (file, offset, bytes, crc32; flat
 *                           start for optimizer pieces).
 * The manifest is written last, by rank 0, only after every rank has
 * written and fsynced its files, through manifest.yaml.tmp, fsync and
 * rename: a directory without manifest.yaml is an incomplete save and is
 * never picked by `resume: auto`. Loading re-slices the optimizer state for
 * any DP size, with or without ZeRO; a different TP size needs
 * ct_ckpt_reshard. Private to trainer/. */
#ifndef CT_TRAINER_CKPT_H
#define CT_TRAINER_CKPT_H

#include <stdint.h>

#include "comm/comm.h"
#include "core/config.h"
#include "trainer/gpt2.h"
#include "trainer/optim.h"

typedef struct {
    int64_t step;        /* optimizer steps completed */
    int64_t samples;     /* data position: samples consumed from the order */
    uint64_t sample_rng; /* state of the text-sampling RNG */
} ct_ckpt_state_t;

/* Saves to RUN_DIR/ckpt/step_%08d. Collective over g's world (g may be
 * NULL for one process); every rank gets the same status. *dir_p
 * (optional) gets a malloc'd path. */
ct_status_t ct_ckpt_save(const char *run_dir, const ct_gpt2_t *m, const ct_optim_t *o,
                         const ct_config_t *cfg, const ct_ckpt_state_t *state,
                         const ct_comm_groups_t *g, char **dir_p);
/* Newest complete checkpoint under RUN_DIR/ckpt, as a malloc'd path;
 * CT_ERR_NOT_FOUND (not logged) when there is none. */
ct_status_t ct_ckpt_find_latest(const char *run_dir, char **dir_p);
/* Newest complete checkpoint whose step is below `before`. */
ct_status_t ct_ckpt_find_before(const char *run_dir, int64_t before, char **dir_p);
/* Reads the config stored in a checkpoint's manifest into cfg. */
ct_status_t ct_ckpt_read_config(const char *dir, ct_config_t *cfg);
/* Loads this rank's parameter shard (and, with o, its slice of the AdamW
 * state) into a model whose dims and TP size must match, verifying every
 * checksum. No collectives. */
ct_status_t ct_ckpt_load(const char *dir, ct_gpt2_t *m, ct_optim_t *o, ct_ckpt_state_t *state_p);
/* Rewrites checkpoint src for new_tp tensor-parallel ranks into directory
 * dst (offline, one process). */
ct_status_t ct_ckpt_reshard(const char *src, const char *dst, int new_tp);
/* Deletes complete checkpoints older than the newest keep_last (> 0),
 * except those whose step is a multiple of keep_every (> 0). */
void ct_ckpt_prune(const char *run_dir, int keep_last, int keep_every);

#endif
