# starling_warnings(target): the warning set every project target compiles with.
function(starling_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wold-style-cast -Wcast-align -Woverloaded-virtual
                                           -Wnull-dereference -Wimplicit-fallthrough)
  if(STARLING_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
