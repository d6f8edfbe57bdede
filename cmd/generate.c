// placeholder until this subcommand lands
#include "cmd.h"
#include "kernels/err.h"
int cmd_generate(int argc, char **argv) { (void)argc; (void)argv; err_set("not built yet"); return cmd_fail("generate"); }
