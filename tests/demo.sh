#!/bin/sh
# make demo: start the simulator and show it working. Grows with the project.
echo "demo: not yet"
