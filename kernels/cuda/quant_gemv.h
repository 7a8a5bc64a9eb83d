#pragma once
// Host launchers of the CUDA GEMV kernels; plain pointers (the CPU kernels' argument structs,
// all pointers on the device) so nvcc never sees LibTorch headers. y is written whole
// (zeroed first where the kernel accumulates atomically), on `stream`.
#include "cpu/gemv_cpu.h"

#include <cuda_runtime_api.h>

namespace layerwise::kernels {

void launch_gptq_gemv(const cpu::GptqGemvArgs& a, cudaStream_t stream);
void launch_blockwise4_gemv(const cpu::Blockwise4GemvArgs& a, cudaStream_t stream);
void launch_int8_gemv(const cpu::Int8GemvArgs& a, cudaStream_t stream);

} // namespace layerwise::kernels
