# Device memory plan (model/memplan, trustee plan-memory)
trustee_c_test(test_memplan SOURCES test_memplan.c)
trustee_sh_test(test_plan_memory_cli test_plan_memory_cli.sh)
