# Sanitizer builds apply to every target of the project (libraries, tests, tools).
# address: ASan + UBSan (halts on the first UB report).  thread: TSan.
if(RANKFS_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
elseif(RANKFS_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT RANKFS_SANITIZE STREQUAL "")
  message(FATAL_ERROR "RANKFS_SANITIZE must be '', 'address' or 'thread', not '${RANKFS_SANITIZE}'")
endif()
