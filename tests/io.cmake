# Model I/O: safetensors reader/writer, config.json, `trustee init-model`, and bad inputs run
# through ASan + UBSan builds of the loaders and of the trustee binary.

# reader / writer / config against the independent reference checkpoint
trustee_c_test(test_io_st SOURCES test_io_st.c)
target_compile_definitions(test_io_st PRIVATE TEST_TMP_DIR="${CMAKE_CURRENT_BINARY_DIR}/io-tmp")

# io_load DIR: config + safetensors + tokenizer loaders, reports the first error
add_executable(io_load io_load.c)
target_link_libraries(io_load PRIVATE trustee_model)

# ---- ASan + UBSan copies: every CPU library source (no CUDA), io_load and the trustee binary ----
file(GLOB IO_ASAN_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/*.c ${CMAKE_SOURCE_DIR}/kernels/cpu/*.c
     ${CMAKE_SOURCE_DIR}/model/*.c ${CMAKE_SOURCE_DIR}/learner/*.c ${CMAKE_SOURCE_DIR}/sim/*.c
     ${CMAKE_SOURCE_DIR}/comm/*.c ${CMAKE_SOURCE_DIR}/rollout/*.c)
file(GLOB IO_ASAN_CMD_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/cmd/*.c)
set(IO_SANITIZE -fsanitize=address,undefined -fno-omit-frame-pointer)
add_library(trustee_asan_lib STATIC ${IO_ASAN_SRC} ${CMAKE_SOURCE_DIR}/model/embedded.S
            ${CMAKE_BINARY_DIR}/gen/sim_data.S)
target_include_directories(trustee_asan_lib PUBLIC ${CMAKE_SOURCE_DIR} PRIVATE ${CMAKE_BINARY_DIR}/gen)
target_compile_options(trustee_asan_lib PUBLIC $<$<COMPILE_LANGUAGE:C>:${IO_SANITIZE} -O1 -g>)
target_compile_options(trustee_asan_lib PRIVATE
                       $<$<COMPILE_LANGUAGE:ASM>:-Wa,-I${CMAKE_SOURCE_DIR}/model/data>)
target_link_options(trustee_asan_lib PUBLIC ${IO_SANITIZE})
target_link_libraries(trustee_asan_lib PUBLIC PkgConfig::OPENBLAS OpenMP::OpenMP_C m PkgConfig::JANSSON
                      PkgConfig::UTF8PROC PkgConfig::ONIG PkgConfig::LUA MPI::MPI_C hdf5::hdf5
                      PkgConfig::MSGPACK)
set_source_files_properties(${CMAKE_SOURCE_DIR}/model/embedded.S PROPERTIES OBJECT_DEPENDS
  "${CMAKE_SOURCE_DIR}/model/data/qwen3-tokenizer/tokenizer.json;${CMAKE_SOURCE_DIR}/model/data/qwen3-tokenizer/tokenizer_config.json")

add_executable(io_load_asan io_load.c)
target_link_libraries(io_load_asan PRIVATE trustee_asan_lib)
add_executable(trustee_asan ${IO_ASAN_CMD_SRC})
target_link_libraries(trustee_asan PRIVATE trustee_asan_lib)

trustee_sh_test(io_bad io_bad.sh)
set_property(TEST io_bad APPEND PROPERTY ENVIRONMENT
             "IO_LOAD_ASAN=$<TARGET_FILE:io_load_asan>;TRUSTEE_ASAN=$<TARGET_FILE:trustee_asan>")

# init-model round trip through our reader, and through an independent reader (torch)
trustee_sh_test(io_roundtrip io_roundtrip.sh)
set_property(TEST io_roundtrip APPEND PROPERTY ENVIRONMENT
             "IO_LOAD=$<TARGET_FILE:io_load>;TRUSTEE_ASAN=$<TARGET_FILE:trustee_asan>")

# the same outputs read by torch + json (skips when /usr/bin/python3 has no torch)
trustee_sh_test(io_torch io_torch.sh)
