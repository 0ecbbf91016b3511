# CMake include file that lets mir-flare 1.4.0 build without internet (CMAKE_PROJECT_flare_INCLUDE).
#
# It runs right after FLARE's `project(flare)` and before any of FLARE's downloads, and replaces them
# with system packages, without changing FLARE's own files:
#   googletest  (FetchContent)        -> not used: an empty source dir, C++ test target left out of `all`
#   nlohmann json (FetchContent)      -> find_package(nlohmann_json)  (Debian: nlohmann-json3-dev)
#   pybind11 (FetchContent)           -> find_package(pybind11 >= 2.12) from the build venv's pip package
#   Eigen 3.3.7 (ExternalProject_Add) -> the system Eigen headers       (Debian: libeigen3-dev)
# Inputs: Python_EXECUTABLE (the build venv's python); optional EIGEN3_INCLUDE_DIR.
# Used by baselines/data/flare/install_flare.sh (`tm23 install-flare`).

if(NOT Python_EXECUTABLE)
  message(FATAL_ERROR "[tm23data] pass -DPython_EXECUTABLE=<python with pybind11 installed>")
endif()

set(FETCHCONTENT_FULLY_DISCONNECTED ON)
set(_tm23_stub "${CMAKE_BINARY_DIR}/_tm23_offline")
file(MAKE_DIRECTORY "${_tm23_stub}/empty")
file(WRITE "${_tm23_stub}/json/CMakeLists.txt" "# nlohmann_json comes from find_package (tm23data offline build)\n")

# --- pybind11 ---------------------------------------------------------------------------------------
set(PYBIND11_FINDPYTHON ON)
execute_process(
  COMMAND "${Python_EXECUTABLE}" -m pybind11 --cmakedir
  OUTPUT_VARIABLE _tm23_pybind11_dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _tm23_rc)
if(NOT _tm23_rc EQUAL 0)
  message(FATAL_ERROR "[tm23data] `${Python_EXECUTABLE} -m pybind11 --cmakedir` failed: install pybind11>=2.12 there")
endif()
set(pybind11_DIR "${_tm23_pybind11_dir}")
find_package(pybind11 2.12 CONFIG REQUIRED)
set(FETCHCONTENT_SOURCE_DIR_PYBIND11 "${_tm23_stub}/empty")

# --- googletest: not built (FLARE's C++ unit tests are left out of `all`) ----------------------------
set(FETCHCONTENT_SOURCE_DIR_GOOGLETEST "${_tm23_stub}/empty")
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL set_property TARGET tests PROPERTY EXCLUDE_FROM_ALL TRUE)

# --- nlohmann json ------------------------------------------------------------------------------------
find_package(nlohmann_json 3.2 CONFIG REQUIRED)
set(FETCHCONTENT_SOURCE_DIR_JSON "${_tm23_stub}/json")

# --- Eigen: the system headers instead of a download ---------------------------------------------------
if(NOT EIGEN3_INCLUDE_DIR)
  find_package(Eigen3 3.3 CONFIG QUIET)
endif()
if(NOT EIGEN3_INCLUDE_DIR)
  find_path(EIGEN3_INCLUDE_DIR NAMES Eigen/Dense PATH_SUFFIXES eigen3)
endif()
if(NOT EIGEN3_INCLUDE_DIR OR NOT EXISTS "${EIGEN3_INCLUDE_DIR}/Eigen/Dense")
  message(FATAL_ERROR "[tm23data] Eigen 3 headers not found: install libeigen3-dev or pass -DEIGEN3_INCLUDE_DIR=...")
endif()
message(STATUS "[tm23data] offline build: Eigen ${EIGEN3_INCLUDE_DIR}, pybind11 ${pybind11_VERSION}, "
               "nlohmann_json ${nlohmann_json_VERSION}")

# ExternalProject.cmake has an include guard, so FLARE's own include(ExternalProject) keeps this definition.
include(ExternalProject)
function(ExternalProject_Add name)
  if(NOT name STREQUAL "eigen_project")
    message(FATAL_ERROR "[tm23data] unexpected download ExternalProject_Add(${name}) in an offline build")
  endif()
  add_custom_target(eigen_project)
  set_property(TARGET eigen_project PROPERTY _EP_SOURCE_DIR "${EIGEN3_INCLUDE_DIR}")
endfunction()
