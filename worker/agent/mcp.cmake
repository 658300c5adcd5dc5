# agentmcp: the MCP stdio client of the agent runtime (worker/agent/mcp.h), a static library
# the worker and its tests link. Included from worker/CMakeLists.txt.
add_library(agentmcp STATIC ${CMAKE_CURRENT_LIST_DIR}/mcp.c ${CMAKE_CURRENT_LIST_DIR}/mcp_tools.c
            ${CMAKE_CURRENT_LIST_DIR}/mcp_mp.c)
set_target_properties(agentmcp PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(agentmcp PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(agentmcp PUBLIC actor proto)
