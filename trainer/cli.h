/* Argument helpers shared by the ctrain subcommands. Private to trainer/. */
#ifndef CT_TRAINER_CLI_H
#define CT_TRAINER_CLI_H

/* If argv[*i] is `--set KEY=VALUE` (two words) or `--set=KEY=VALUE`,
 * appends KEY=VALUE to sets[*n_sets] (sets has room for argc entries),
 * moves *i past it and returns 1; otherwise returns 0. */
int ct__cli_take_set(int argc, char **argv, int *i, const char **sets, int *n_sets);

#endif
