#!/usr/bin/env bash
# Remove flowgate's XDP program from every port it is pinned on (the
# counterpart of deleting the NFQUEUE rule). Traffic then takes the host's
# normal path again: on a box with no bridge between the ports, that means
# the wire is open no longer.
set -euo pipefail
exec flowgate xdp detach "$@"
