#pragma once
// The engine's facade: what the CLI and the UI call. Blocking calls; typed exceptions
// (core/error.h) carry what went wrong, where, and what to do.
#include "core/bytes.h"
#include "core/error.h"
#include "inspect.h"
#include "model/presets.h"
#include "quant/gptq_calibration.h"
#include "jobs/gptq_job.h"
