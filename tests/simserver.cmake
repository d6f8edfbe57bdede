# sim/server: the simulator side of the protocol. Programmatic backend over every embedded Lua env
# (oracle replay through TOOL / USER -> reward 1, do-nothing -> -1, episode independence, DROP,
# malformed requests); LM backend on a tiny random model made by `trustee init-model`.
trustee_c_test(test_simserver SOURCES test_simserver.c LIBS trustee_sim)
# test_simserver_lm needs a model made by `trustee init-model`: built here, run by simserver_lm.sh
add_executable(test_simserver_lm test_simserver_lm.c)
target_link_libraries(test_simserver_lm PRIVATE trustee_sim trustee_model)
target_compile_definitions(test_simserver_lm PRIVATE SOURCE_DIR="${CMAKE_SOURCE_DIR}")
trustee_sh_test(test_simserver_lm simserver_lm.sh $<TARGET_FILE:test_simserver_lm>)
