# Every public header must compile on its own and survive a second inclusion.
# One generated .cpp per include/corio/**/*.hpp, compiled (never linked) into
# an object library that is part of the normal build, so scripts/test runs it.
# New headers are picked up at the next build (CONFIGURE_DEPENDS).

file(GLOB_RECURSE _corio_headers CONFIGURE_DEPENDS
     RELATIVE "${PROJECT_SOURCE_DIR}/include"
     "${PROJECT_SOURCE_DIR}/include/corio/*.hpp")
list(SORT _corio_headers)

set(_corio_header_check_sources "")
foreach(_header IN LISTS _corio_headers)
    string(MAKE_C_IDENTIFIER "${_header}" _id)
    set(_src "${PROJECT_BINARY_DIR}/header_check/${_id}.cpp")
    # file(CONFIGURE) rewrites only on change: no needless rebuilds.
    file(CONFIGURE OUTPUT "${_src}"
         CONTENT "#include <${_header}>\n#include <${_header}>\n")
    list(APPEND _corio_header_check_sources "${_src}")
endforeach()

add_library(corio_header_check OBJECT ${_corio_header_check_sources})
target_link_libraries(corio_header_check PRIVATE corio::corio)
# -Werror regardless of CORIO_WERROR: a warning in a header is every user's
# warning. Turn CORIO_HEADER_CHECK off to build with a compiler that warns.
if(MSVC)
    target_compile_options(corio_header_check PRIVATE /W4 /WX)
else()
    target_compile_options(corio_header_check PRIVATE -Wall -Wextra -Werror)
endif()

list(LENGTH _corio_headers _count)
message(STATUS "corio: header check of ${_count} public header(s)")
