/* Text sampling with temperature and top-k. Each new token reruns the
 * forward pass over the window (no KV cache): simple, and fast enough for
 * the progress samples printed during training. */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "trainer/trainer.h"

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

void ct_sample_generate(ct_model_t *m, int32_t *ids, int n_prompt, int n_new, float temperature,
                      int top_k, ct_rng_t *rng, float *scratch)
{
    const int V = m->d.V, Vpl = m->d.Vpl;
    float *gathered = scratch + m->d.Vp;
    int len = n_prompt;
    for (int k = 0; k < n_new; k++) {
        int t = len < m->T ? len : m->T;
        const int32_t *win = ids + (len - t);
        ct_model_forward(m, win, NULL, 1, t);
        const float *logits = ct_model_logits_row(m, t - 1);
        if (m->tp) { /* the last row only: Vp floats, not the (T, Vp) logits */
            ct_comm_set_activity("sampling token %d", k);
            if (ct_comm_allgather(m->tp, logits, gathered, (size_t)Vpl, CT_DTYPE_F32, NULL) !=
                CT_OK)
                ct_comm_abort(1);
            logits = gathered;
        }
        float thresh = -INFINITY;
        if (top_k > 0 && top_k < V) {
            memcpy(scratch, logits, (size_t)V * sizeof(float));
            qsort(scratch, (size_t)V, sizeof(float), cmp_desc);
            thresh = scratch[top_k - 1];
        }
        float maxv = -INFINITY;
        for (int v = 0; v < V; v++)
            if (logits[v] > maxv) maxv = logits[v];
        double sum = 0.0;
        for (int v = 0; v < V; v++) {
            float p = logits[v] >= thresh ? expf((logits[v] - maxv) / temperature) : 0.0f;
            scratch[v] = p;
            sum += p;
        }
        double r = ct_rng_f32(rng) * sum, acc = 0.0;
        int next = V - 1;
        for (int v = 0; v < V; v++) {
            acc += scratch[v];
            if (scratch[v] > 0.0f && r < acc) {
                next = v;
                break;
            }
        }
        ids[len++] = next;
    }
}

ct_status_t ct_sample_print(ct_model_t *m, ct_bpe_t *bpe, const char *prompt, int n_new,
                            float temperature, int top_k, ct_rng_t *rng, FILE *out)
{
    int32_t *prompt_ids = NULL;
    size_t n_prompt = 0, cap = 0;
    ct_status_t st = CT_OK;
    if (bpe && prompt && *prompt) {
        st = ct_bpe_encode(bpe, prompt, strlen(prompt), &prompt_ids, &n_prompt, &cap);
        if (st != CT_OK) return st;
    }
    int32_t start = bpe ? ct_bpe_eot(bpe) : m->d.V - 1;
    if (n_prompt == 0) {
        free(prompt_ids);
        prompt_ids = NULL;
    }
    size_t total = (n_prompt ? n_prompt : 1) + (size_t)n_new;
    int32_t *ids = malloc(total * sizeof *ids);
    float *scratch = malloc(2 * (size_t)m->d.Vp * sizeof *scratch);
    if (!ids || !scratch) {
        st = CT_ERR_NO_MEMORY;
        goto out;
    }
    if (n_prompt) memcpy(ids, prompt_ids, n_prompt * sizeof *ids);
    else ids[0] = start, n_prompt = 1;
    for (size_t i = 0; i < n_prompt; i++)
        if (ids[i] < 0 || ids[i] >= m->d.V) {
            CT_LOG_ERROR("prompt token %d is outside the model's vocabulary (%d)", ids[i], m->d.V);
            st = CT_ERR_INVALID_ARG;
            goto out;
        }
    ct_sample_generate(m, ids, (int)n_prompt, n_new, temperature, top_k, rng, scratch);
    if (!out) goto out;
    if (bpe) {
        size_t len;
        char *text = ct_bpe_decode(bpe, ids, total, &len);
        if (!text) {
            st = CT_ERR_INVALID_ARG;
            goto out;
        }
        int bad = fwrite(text, 1, len, out) != len || fputc('\n', out) == EOF;
        free(text);
        if (bad) goto write_failed;
    } else {
        for (size_t i = 0; i < total; i++)
            if (fprintf(out, "%d%c", ids[i], i + 1 < total ? ' ' : '\n') < 0) goto write_failed;
    }
    if (fflush(out) == 0) goto out;
write_failed:
    CT_LOG_ERROR("cannot write the generated text: %s", strerror(errno));
    st = CT_ERR_IO;
out:
    free(prompt_ids);
    free(ids);
    free(scratch);
    return st;
}
