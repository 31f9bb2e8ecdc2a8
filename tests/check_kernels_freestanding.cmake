# Compiles every header under engine/kernels/ with no C++ standard library include path:
# the kernels are shared with bare-metal firmware and may use only <stdint.h>, <stddef.h>, <math.h>.
file(GLOB headers "${SRC}/engine/kernels/*.h")
set(tu "${CMAKE_CURRENT_BINARY_DIR}/kernels_freestanding.cpp")
foreach(h ${headers})
  file(WRITE ${tu} "#include \"${h}\"\n")
  execute_process(
    COMMAND ${CXX} -std=c++17 -nostdinc++ -fsyntax-only -Wall -Wextra -Werror -I${SRC} ${tu}
    RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "kernel header ${h} does not compile freestanding:\n${err}")
  endif()
endforeach()
list(LENGTH headers n)
message(STATUS "${n} kernel headers compile without the C++ standard library")
