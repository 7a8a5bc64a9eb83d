#pragma once
// The engine API: everything the command line and the desktop app use. Open a model
// (api/model.h), plan it on devices (api/planning.h), load and run it (api/session.h),
// quantize it (api/quantize.h), tokenize (text/tokenizer.h), benchmark the kernels
// (api/kernel_bench.h). Calls block; errors are typed exceptions (core/error.h) that say what
// went wrong, where, and what to do. Programs outside the engine see only these headers and
// the value types they include: the build gives them no other engine include folder.
#include "api/engine_info.h"
#include "api/kernel_bench.h"
#include "api/model.h"
#include "api/planning.h"
#include "api/quantize.h"
#include "api/session.h"
#include "core/bytes.h"
#include "core/error.h"
#include "core/json_read.h"
#include "model/presets.h"
#include "quant/gptq_calibration.h"
#include "text/harmony.h"
#include "text/tokenizer.h"
