/* `ctrain plot RUN_DIR... [-o OUT.svg]`: draws RUN_DIR/metrics.jsonl as a
 * self-contained SVG with three stacked panels against step: loss (train
 * solid, validation dashed with markers), learning rate, and throughput
 * (tok/s). Each run gets its own color and a legend entry naming its
 * directory. Every series is one <polyline> with id "<metric>-<run>" (e.g.
 * "loss-0", "val_loss-1", "lr-0", "tok_s-0") holding one point per metric
 * line that carries that key, so tests and scripts can read it back.
 *
 * metrics.jsonl holds one flat JSON object per line whose values are
 * numbers (read with core/json). A line that is not such an object (e.g. a line torn by
 * a crash mid-write) is skipped with a warning naming file:line; blank lines
 * are ignored. Non-finite values (nan, inf) are parsed but left out of the
 * plot. A missing metrics.jsonl, or one with no usable line, is an error.
 * Lines are plotted in file order; a resumed run that repeats steps shows
 * the repeats as they were logged.
 *
 * Left out: log scales, smoothing, and the other metrics (grad_norm, ms,
 * flop_s, comm and data-wait fractions, memory).
 *
 * Exit codes: 0 success, 1 runtime error (logged), 2 usage error. */
#define _GNU_SOURCE /* getline */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "cli/cli.h"

static const char plot_usage[] =
    "usage: ctrain plot RUN_DIR [RUN_DIR...] [-o OUT.svg]\n"
    "\n"
    "Draws each RUN_DIR/metrics.jsonl as an SVG: loss (train and val), learning\n"
    "rate and throughput (tok/s) against step, one color per run with a legend\n"
    "naming its directory. Writes OUT.svg (default: FIRST_RUN_DIR/metrics.svg).\n"
    "Malformed metric lines are skipped with a warning naming file:line.\n";

/* The plotted series, in the order they appear in each run. */
enum { S_LOSS, S_VAL_LOSS, S_LR, S_TOK_S, S_COUNT };
static const char *const series_key[S_COUNT] = {"loss", "val_loss", "lr", "tok_s"};

typedef struct {
    double *x, *y; // (n,) step and value
    size_t n, cap;
} series_t;

typedef struct {
    const char *name; // the run dir as given on the command line (not owned)
    series_t s[S_COUNT];
} run_t;

static const char *const run_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_COLORS (sizeof run_colors / sizeof run_colors[0])

/* Panel geometry, in SVG user units. */
#define W 900.0
#define MARGIN_L 80.0
#define MARGIN_R 20.0
#define PANEL_H 240.0
#define PANEL_GAP 60.0
#define TOP 40.0
#define XLABEL_DY 34.0 /* the axis label's baseline below its panel */
#define MARGIN_B 50.0  /* below the last panel: the axis label and its descent */
#define N_TICKS 5

static int series_push(series_t *s, double x, double y)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        double *nx = realloc(s->x, cap * sizeof *nx);
        if (!nx) return -1;
        s->x = nx;
        double *ny = realloc(s->y, cap * sizeof *ny);
        if (!ny) return -1;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return 0;
}

static void run_free(run_t *r)
{
    for (int k = 0; k < S_COUNT; k++) {
        free(r->s[k].x);
        free(r->s[k].y);
    }
}

/* ---- metrics lines: one flat JSON object of numbers per line ---- */

static const char *skip_ws(const char *p)
{
    while (*p && isspace((unsigned char)*p)) p++;
    return p;
}

/* Copies line to out (3 * strlen(line) + 1 bytes) with the non-finite
 * numbers printf's %g writes (nan, -nan, inf, -inf; train.c logs a diverged
 * step's loss that way) spelled as JSON readers know them (NaN, Infinity,
 * -Infinity). Text inside strings is left alone. */
static void spell_nonfinite(const char *line, char *out)
{
    int in_string = 0;
    for (const char *p = line; *p;) {
        if (in_string) {
            if (*p == '\\' && p[1]) *out++ = *p++;
            else if (*p == '"') in_string = 0;
            *out++ = *p++;
            continue;
        }
        if (*p == '"') in_string = 1;
        const char *q = p + (*p == '-');
        int nan = !strncmp(q, "nan", 3), inf = !strncmp(q, "inf", 3);
        if ((nan || inf) && !isalnum((unsigned char)q[3]) && (p == line || !isalnum((unsigned char)p[-1]))) {
            const char *w = nan ? "NaN" : *p == '-' ? "-Infinity" : "Infinity";
            out = stpcpy(out, w);
            p = q + 3;
            continue;
        }
        *out++ = *p++;
    }
    *out = 0;
}

/* Parses one line (fixed is scratch of 3 * strlen(line) + 1 bytes). Returns
 * the object, or NULL when the line is not a flat object of numbers. */
static struct json_object *parse_line(const char *line, char *fixed)
{
    spell_nonfinite(line, fixed);
    struct json_object *o = ct_json_parse(fixed, strlen(fixed), 0, NULL);
    if (!json_object_is_type(o, json_type_object)) goto bad;
    json_object_object_foreach(o, key, val) {
        (void)key;
        if (!json_object_is_type(val, json_type_double) && !json_object_is_type(val, json_type_int))
            goto bad;
    }
    return o;
bad:
    json_object_put(o);
    return NULL;
}

/* Reads DIR/metrics.jsonl into r. Logs and returns -1 on a missing or
 * unreadable file or one with no usable line. */
static int run_load(run_t *r, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        CT_LOG_ERROR("cannot open %s: %s\n---> HINT: is %s a run directory (train.run_dir)?", path,
                     strerror(errno), dir);
        return -1;
    }
    char *line = NULL, *fixed = NULL;
    size_t cap = 0, fixed_cap = 0;
    long lineno = 0, used = 0;
    int rc = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, fp)) != -1) {
        lineno++;
        if (!*skip_ws(line)) continue;
        if (3 * (size_t)len + 1 > fixed_cap) {
            char *nf = realloc(fixed, 3 * (size_t)len + 1);
            if (!nf) {
                CT_LOG_ERROR("out of memory reading %s", path);
                rc = -1;
                goto close_file;
            }
            fixed = nf;
            fixed_cap = 3 * (size_t)len + 1;
        }
        struct json_object *o = parse_line(line, fixed), *step = NULL;
        if (!o || !json_object_object_get_ex(o, "step", &step)) {
            json_object_put(o);
            CT_LOG_WARN("%s:%ld: skipping malformed metrics line (want a flat JSON object of "
                        "numbers with a \"step\")",
                        path, lineno);
            continue;
        }
        used++;
        double x = json_object_get_double(step);
        for (int k = 0; k < S_COUNT; k++) {
            struct json_object *v;
            if (!json_object_object_get_ex(o, series_key[k], &v)) continue;
            double y = json_object_get_double(v);
            if (!isfinite(y) || !isfinite(x)) continue;
            if (series_push(&r->s[k], x, y) != 0) {
                json_object_put(o);
                CT_LOG_ERROR("out of memory reading %s", path);
                rc = -1;
                goto close_file;
            }
        }
        json_object_put(o);
    }
    if (ferror(fp)) {
        CT_LOG_ERROR("cannot read %s: %s", path, strerror(errno));
        rc = -1;
    } else if (used == 0) {
        CT_LOG_ERROR("%s has no metric lines\n---> HINT: has the run logged a step yet?", path);
        rc = -1;
    }
close_file:
    free(fixed);
    free(line);
    fclose(fp);
    return rc;
}

/* ---- SVG ---- */

static void xml_escape(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&apos;", out); break;
        default:
            /* Control characters other than tab and newline are not XML. */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n') fputc('?', out);
            else fputc(*s, out);
        }
    }
}

typedef struct {
    double lo, hi;
} range_t;

/* Widens r to a "nice" range covering it and returns the tick spacing
 * (1, 2 or 5 times a power of ten, about N_TICKS ticks). */
static double nice_range(range_t *r)
{
    if (!(r->hi > r->lo)) {
        double pad = r->lo != 0 ? fabs(r->lo) * 0.1 : 1.0;
        r->lo -= pad;
        r->hi += pad;
    }
    double raw = (r->hi - r->lo) / N_TICKS;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    r->lo = floor(r->lo / step) * step;
    r->hi = ceil(r->hi / step) * step;
    return step;
}

typedef struct {
    const char *title;
    int keys[2]; // series drawn in this panel; -1 when unused
} panel_t;

static const panel_t panels[] = {
    {"loss (solid: train, dashed: val)", {S_LOSS, S_VAL_LOSS}},
    {"learning rate", {S_LR, -1}},
    {"throughput (tok/s)", {S_TOK_S, -1}},
};
#define N_PANELS (int)(sizeof panels / sizeof panels[0])

static void draw_panel(FILE *out, const panel_t *p, double y0, const run_t *runs, int n_runs,
                       range_t xr, double xstep)
{
    range_t yr = {INFINITY, -INFINITY};
    for (int r = 0; r < n_runs; r++)
        for (int j = 0; j < 2; j++) {
            if (p->keys[j] < 0) continue;
            const series_t *s = &runs[r].s[p->keys[j]];
            for (size_t i = 0; i < s->n; i++) {
                if (s->y[i] < yr.lo) yr.lo = s->y[i];
                if (s->y[i] > yr.hi) yr.hi = s->y[i];
            }
        }
    if (yr.lo > yr.hi) yr.lo = yr.hi = 0; // nothing to draw: an empty frame
    double ystep = nice_range(&yr);
    double x_l = MARGIN_L, x_r = W - MARGIN_R, y_t = y0, y_b = y0 + PANEL_H;
#define PX(v) (x_l + ((v) - xr.lo) / (xr.hi - xr.lo) * (x_r - x_l))
#define PY(v) (y_b - ((v) - yr.lo) / (yr.hi - yr.lo) * (y_b - y_t))

    fprintf(out, "<g class=\"panel\">\n<text x=\"%.1f\" y=\"%.1f\" class=\"title\">", x_l,
            y_t - 8);
    xml_escape(out, p->title);
    fputs("</text>\n", out);
    fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"frame\"/>\n",
            x_l, y_t, x_r - x_l, y_b - y_t);
    /* Ticks: i counts from lo so rounding never drops the last one. */
    for (int i = 0; xr.lo + i * xstep <= xr.hi + xstep * 1e-9; i++) {
        double v = xr.lo + i * xstep, x = PX(v);
        fprintf(out,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" class=\"xtick\">%.6g</text>\n",
                x, y_t, x, y_b, x, y_b + 16, fabs(v) < xstep * 1e-9 ? 0.0 : v);
    }
    for (int i = 0; yr.lo + i * ystep <= yr.hi + ystep * 1e-9; i++) {
        double v = yr.lo + i * ystep, y = PY(v);
        fprintf(out,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" class=\"ytick\">%.6g</text>\n",
                x_l, y, x_r, y, x_l - 6, y + 4, fabs(v) < ystep * 1e-9 ? 0.0 : v);
    }
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" class=\"xlabel\">step</text>\n", (x_l + x_r) / 2,
            y_b + XLABEL_DY);
    for (int r = 0; r < n_runs; r++) {
        const char *color = run_colors[r % N_COLORS];
        for (int j = 0; j < 2; j++) {
            int k = p->keys[j];
            if (k < 0) continue;
            const series_t *s = &runs[r].s[k];
            if (s->n == 0) continue;
            fprintf(out, "<polyline id=\"%s-%d\" class=\"series %s run-%d\" stroke=\"%s\"%s points=\"",
                    series_key[k], r, series_key[k], r, color,
                    k == S_VAL_LOSS ? " stroke-dasharray=\"6,4\"" : "");
            for (size_t i = 0; i < s->n; i++)
                fprintf(out, "%s%.2f,%.2f", i ? " " : "", PX(s->x[i]), PY(s->y[i]));
            fputs("\"/>\n", out);
            if (k == S_VAL_LOSS)
                for (size_t i = 0; i < s->n; i++)
                    fprintf(out, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n",
                            PX(s->x[i]), PY(s->y[i]), color);
        }
    }
    fputs("</g>\n", out);
#undef PX
#undef PY
}

static void write_svg(FILE *out, const run_t *runs, int n_runs)
{
    range_t xr = {INFINITY, -INFINITY};
    for (int r = 0; r < n_runs; r++)
        for (int k = 0; k < S_COUNT; k++)
            for (size_t i = 0; i < runs[r].s[k].n; i++) {
                if (runs[r].s[k].x[i] < xr.lo) xr.lo = runs[r].s[k].x[i];
                if (runs[r].s[k].x[i] > xr.hi) xr.hi = runs[r].s[k].x[i];
            }
    if (xr.lo > xr.hi) xr.lo = xr.hi = 0;
    double xstep = nice_range(&xr);

    double legend_h = 20.0 * n_runs + 10;
    double panels_top = TOP + legend_h + PANEL_GAP / 2;
    double h = panels_top + N_PANELS * PANEL_H + (N_PANELS - 1) * PANEL_GAP + MARGIN_B;
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<style>.frame{fill:none;stroke:#444}.grid{stroke:#ddd}"
            ".xtick{text-anchor:middle}.ytick{text-anchor:end}.xlabel{text-anchor:middle}"
            ".title{font-weight:bold}polyline{fill:none;stroke-width:1.5}</style>\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%.1f\" y=\"24\" font-size=\"16\" class=\"title\">ctrain metrics</text>\n"
            "<g id=\"legend\">\n",
            W, h, W, h, MARGIN_L);
    for (int r = 0; r < n_runs; r++) {
        double y = TOP + 20.0 * r + 10;
        fprintf(out,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"3\"/><text id=\"legend-%d\" x=\"%.1f\" y=\"%.1f\">",
                MARGIN_L, y, MARGIN_L + 24, y, run_colors[r % N_COLORS], r, MARGIN_L + 30, y + 4);
        xml_escape(out, runs[r].name);
        fputs("</text>\n", out);
    }
    fputs("</g>\n", out);
    for (int p = 0; p < N_PANELS; p++)
        draw_panel(out, &panels[p], panels_top + p * (PANEL_H + PANEL_GAP), runs, n_runs, xr,
                   xstep);
    fputs("</svg>\n", out);
}

int ct_cmd_plot(int argc, char **argv)
{
    const char *out_path = NULL;
    char default_out[4096];
    const ct_opt_t opts[] = {{"--out", "-o", CT_OPT_STR, &out_path}};
    ct_args_t a = {.cmd = "plot", .usage = plot_usage, .opts = opts, .n_opts = 1, .min_pos = 1,
                   .max_pos = -1, .pos_names = "RUN_DIR"};
    int rc = ct_args_parse(&a, argc, argv, 1);
    run_t *runs = rc < 0 ? calloc((size_t)a.n_pos, sizeof *runs) : NULL;
    int n_runs = rc < 0 ? a.n_pos : 0;
    if (rc < 0 && !runs) {
        CT_LOG_ERROR("out of memory");
        rc = 1;
    }
    for (int r = 0; r < n_runs && runs; r++) runs[r].name = a.pos[r];
    ct_args_free(&a);
    if (rc >= 0) {
        free(runs);
        return rc;
    }
    rc = 1;
    for (int r = 0; r < n_runs; r++)
        if (run_load(&runs[r], runs[r].name) != 0) goto free_runs;
    if (!out_path) {
        snprintf(default_out, sizeof default_out, "%s/metrics.svg", runs[0].name);
        out_path = default_out;
    }
    FILE *out = fopen(out_path, "w");
    if (!out) {
        CT_LOG_ERROR("cannot write %s: %s", out_path, strerror(errno));
        goto free_runs;
    }
    write_svg(out, runs, n_runs);
    if (ferror(out) | (fclose(out) != 0)) {
        CT_LOG_ERROR("cannot write %s: %s", out_path, strerror(errno));
        goto free_runs;
    }
    CT_LOG_INFO("wrote %s", out_path);
    rc = 0;
free_runs:
    for (int r = 0; r < n_runs; r++) run_free(&runs[r]);
    free(runs);
    return rc;
}
