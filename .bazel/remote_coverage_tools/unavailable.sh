#!/bin/sh
# Stands in for Bazel's downloaded coverage tools, which an offline checkout does not have.
echo "bazel coverage is not available offline (.bazel/remote_coverage_tools is a stub); use bazel test" >&2
exit 1
