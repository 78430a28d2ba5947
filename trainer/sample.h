/* Autoregressive text generation from a GPT-2 model. Private to trainer/. */
#ifndef CT_TRAINER_SAMPLE_H
#define CT_TRAINER_SAMPLE_H

#include <stdint.h>
#include <stdio.h>

#include "core/rng.h"
#include "data/data.h"
#include "trainer/gpt2.h"

/* ids holds n_prompt >= 1 tokens and room for n_new more; appends n_new
 * sampled tokens. Uses the model's activations (batch 1, a window of the
 * last m->T tokens). temperature > 0; top_k 0 = all of V. `scratch` holds
 * 2*Vp floats. With TP, every rank of the group must call it (same RNG). */
void ct_gpt2_generate(ct_gpt2_t *m, int32_t *ids, int n_prompt, int n_new, float temperature,
                      int top_k, ct_rng_t *rng, float *scratch);

/* Samples n_new tokens after `prompt` (encoded with bpe if given, else the
 * end-of-text token) and writes the text, or ids without a tokenizer, to
 * out (NULL: generate only, for ranks that do not print). bpe may be NULL. */
ct_status_t ct_sample_print(ct_gpt2_t *m, ct_bpe_t *bpe, const char *prompt, int n_new,
                            float temperature, int top_k, ct_rng_t *rng, FILE *out);

#endif
