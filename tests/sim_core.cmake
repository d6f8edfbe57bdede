# sim/ core pieces: tool catalog, tool-call memo, curriculum, reward mapping.
trustee_c_test(test_catalog SOURCES test_catalog.c LIBS trustee_sim)
trustee_c_test(test_memo SOURCES test_memo.c LIBS trustee_sim)
trustee_c_test(test_curriculum SOURCES test_curriculum.c LIBS trustee_sim)
trustee_c_test(test_reward SOURCES test_reward.c LIBS trustee_sim)

# canonical JSON of the memo == Python's json module on random values in many spellings
add_executable(memo_canon_tool memo_canon_tool.c)
target_link_libraries(memo_canon_tool PRIVATE trustee_sim)
trustee_sh_test(memo_canon_python memo_canon.sh $<TARGET_FILE:memo_canon_tool>)
# the copy warm-up's transcripts (sim/copytask): from real oracle transcripts, values copyable and fresh
trustee_c_test(test_copytask SOURCES test_copytask.c LIBS trustee_sim)
