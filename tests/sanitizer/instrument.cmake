# Sanitizer and fuzzer instrumentation, applied target by target (never through global flags).
# Included by the top-level CMakeLists.txt when SPARECYCLES_SANITIZE or SPARECYCLES_FUZZ is on;
# sc_instrument_targets() is called once after every target exists. See docs/security.md.

# The flags for each mode. The fuzz build also marks every library for libFuzzer's coverage
# (fuzzer-no-link); only the harnesses link libFuzzer itself (tests/fuzz/CMakeLists.txt).
set(SC_SANITIZE_COMPILE_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
set(SC_SANITIZE_LINK_FLAGS -fsanitize=address,undefined)
if(SPARECYCLES_FUZZ)
  list(APPEND SC_SANITIZE_COMPILE_FLAGS -fsanitize=fuzzer-no-link)
endif()

# Adds the flags to every compiled target defined in `dir` and the directories below it.
function(sc_instrument_targets dir)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(type MATCHES "^(STATIC_LIBRARY|SHARED_LIBRARY|MODULE_LIBRARY|OBJECT_LIBRARY|EXECUTABLE)$")
      target_compile_options(${t} PRIVATE ${SC_SANITIZE_COMPILE_FLAGS})
      target_link_options(${t} PRIVATE ${SC_SANITIZE_LINK_FLAGS})
    endif()
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    sc_instrument_targets(${sub})
  endforeach()
endfunction()
