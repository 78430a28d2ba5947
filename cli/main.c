/* ctrain: the one binary. Dispatches subcommands; the only place that
 * decides how the process ends. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "cli/cli.h"

static const char usage[] =
    "usage: ctrain COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  train CONFIG.yaml [--set k=v]...   train a GPT-2 or Llama model\n"
    "  sample CKPT_DIR|RUN_DIR [options]  generate text from a checkpoint (a run directory:\n"
    "                                     its newest one)\n"
    "  reshard --tp N SRC DST             convert a checkpoint to N tensor-parallel ranks\n"
    "  tokenize COMMAND ...               byte-level BPE; COMMAND is train, encode, decode,\n"
    "                                     export or pretokenize\n"
    "  plot RUN_DIR... [-o OUT.svg]       plot metrics.jsonl (loss, lr, tok/s) as SVG\n"
    "  doctor CONFIG.yaml [--set k=v]...  check that a job can start (run under mpirun)\n"
    "  plan CONFIG.yaml [--set k=v]...    memory per rank and FLOPs per step of a layout,\n"
    "                                     GPU or CPU, without a GPU\n"
    "  export --format hf CKPT OUT_DIR    write a checkpoint as Hugging Face safetensors\n"
    "                                     (GPT2LMHeadModel or LlamaForCausalLM)\n"
    "  import HF_DIR OUT_DIR [--set k=v]  read a Hugging Face GPT-2 or Llama into a checkpoint\n"
    "\n"
    "`ctrain COMMAND --help` describes each command. Logging: CT_LOG_LEVEL=\n"
    "error|warn|info|debug.\n";

int main(int argc, char **argv)
{
    ct_log_init();
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "train")) return ct_cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "sample")) return ct_cmd_sample(argc - 1, argv + 1);
    if (!strcmp(cmd, "reshard")) return ct_cmd_reshard(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return ct_cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "plot")) return ct_cmd_plot(argc - 1, argv + 1);
    if (!strcmp(cmd, "doctor")) return ct_cmd_doctor(argc - 1, argv + 1);
    if (!strcmp(cmd, "plan")) return ct_cmd_plan(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return ct_cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "import")) return ct_cmd_import(argc - 1, argv + 1);
    fprintf(stderr, "ctrain: unknown command '%s'\n%s", cmd, usage);
    return 2;
}
