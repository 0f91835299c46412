#!/bin/sh
wc -l | tr -d " "
