// CUDA kernels and launchers of the adaptive resampler, free of TensorFlow so
// that both the op (adaptive_resample_op_gpu.cu.cc) and the standalone harness
// (tests/cuda/) run exactly this code. The per-pixel math is the CPU's, from
// adaptive_resample.h.
//
// Include adaptive_resample.h and any AccumulatorType specialisation (half ->
// float) before this file.
//
// Determinism: the forward pass and the kernel/offset gradients give every
// output element to one thread, so they are bitwise reproducible. The image
// gradient is a scatter summed with atomicAdd, so its float rounding depends
// on thread order; the TF op refuses to run it when op determinism is
// required (see CheckBackwardDeterminism in adaptive_resample_op.h).

#ifndef CAR_TF_CUSTOM_OPS_CC_KERNELS_ADAPTIVE_RESAMPLE_GPU_CU_H_
#define CAR_TF_CUSTOM_OPS_CC_KERNELS_ADAPTIVE_RESAMPLE_GPU_CU_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "custom_ops/cc/kernels/adaptive_resample.h"

namespace car_tf {
namespace gpu {

constexpr int kThreadsPerBlock = 256;
// Grid-stride loops cover the rest; more blocks than this only adds
// scheduling overhead on any current GPU.
constexpr int64_t kMaxBlocks = 65535;

template <typename T>
using Acc = typename AccumulatorType<T>::type;

// Types whose sums run in a wider type (half) gather the image gradient in a
// scratch buffer of that wider type, then convert. atomicAdd on __half would
// round every one of the ~k*k*4/scale^2 contributions per pixel to 11 bits.
template <typename T>
constexpr bool NeedsImageGradScratch() {
  return !std::is_same<T, Acc<T>>::value;
}

// Bytes of device scratch LaunchResampleBackward needs; 0 when none.
template <typename T>
size_t ImageGradScratchBytes(const ResampleShape& s) {
  if (!NeedsImageGradScratch<T>()) return 0;
  return static_cast<size_t>(s.batch * s.in_height * s.in_width * s.channels) *
         sizeof(Acc<T>);
}

template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    ForwardKernel(ResampleShape s, const T* image, const T* kernels,
                  const T* offsets_x, const T* offsets_y, T* output) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       p < s.out_pixels(); p += stride) {
    ResampleForwardPixel(s, image, kernels, offsets_x, offsets_y, output, p);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    ParamGradKernel(ResampleShape s, const T* image, const T* kernels,
                    const T* offsets_x, const T* offsets_y,
                    const T* grad_output, T* grad_kernels, T* grad_offsets_x,
                    T* grad_offsets_y) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       p < s.out_pixels(); p += stride) {
    ResampleParamGradPixel(s, image, kernels, offsets_x, offsets_y,
                           grad_output, grad_kernels, grad_offsets_x,
                           grad_offsets_y, p);
  }
}

// AddFn for types with a native atomicAdd (float, double; sm_60+).
struct AtomicAdd {
  template <typename V>
  __device__ void operator()(V* target, V value) const {
    atomicAdd(target, value);
  }
};

// AddFn that redirects each target in the T image gradient to the same
// element of the wider scratch buffer; `base` is only used for the offset.
template <typename T>
struct ScratchAtomicAdd {
  const T* base;
  Acc<T>* scratch;
  __device__ void operator()(T* target, Acc<T> value) const {
    atomicAdd(scratch + (target - base), value);
  }
};

template <typename T, typename AddFn>
__global__ void __launch_bounds__(kThreadsPerBlock)
    ImageGradKernel(ResampleShape s, const T* kernels, const T* offsets_x,
                    const T* offsets_y, const T* grad_output, T* grad_image,
                    AddFn add) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       p < s.out_pixels(); p += stride) {
    ResampleImageGradPixel(s, kernels, offsets_x, offsets_y, grad_output,
                           grad_image, p, 0, s.channels, add);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    NarrowKernel(int64_t size, const Acc<T>* wide, T* narrow) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < size; i += stride) {
    narrow[i] = static_cast<T>(wide[i]);
  }
}

template <typename T>
struct Identity {
  using type = T;
};

// Launches `kernel` over `work` items and returns this launch's own status
// (cudaLaunchKernel reports e.g. cudaErrorNoKernelImageForDevice directly,
// unlike <<<>>>, whose error only shows up in the sticky last-error slot).
template <typename... Params>
cudaError_t Launch(void (*kernel)(Params...), int64_t work,
                   cudaStream_t stream,
                   typename Identity<Params>::type... args) {
  if (work <= 0) return cudaSuccess;
  int64_t blocks = (work + kThreadsPerBlock - 1) / kThreadsPerBlock;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  void* argv[] = {static_cast<void*>(&args)...};
  return cudaLaunchKernel(reinterpret_cast<const void*>(kernel),
                          dim3(static_cast<unsigned>(blocks)),
                          dim3(kThreadsPerBlock), argv, 0, stream);
}

// Forward pass on `stream`. Returns the first launch error, else cudaSuccess.
template <typename T>
cudaError_t LaunchResampleForward(cudaStream_t stream, const ResampleShape& s,
                                  const T* image, const T* kernels,
                                  const T* offsets_x, const T* offsets_y,
                                  T* output) {
  return Launch(ForwardKernel<T>, s.out_pixels(), stream, s, image, kernels,
                offsets_x, offsets_y, output);
}

// Backward pass on `stream`: zero-fills and accumulates grad_image, writes the
// three per-tap gradients. `scratch` must hold ImageGradScratchBytes<T>(s)
// bytes of device memory (may be null when that is 0) and stay allocated
// until the enqueued work has run.
template <typename T>
cudaError_t LaunchResampleBackward(cudaStream_t stream, const ResampleShape& s,
                                   const T* image, const T* kernels,
                                   const T* offsets_x, const T* offsets_y,
                                   const T* grad_output, T* grad_image,
                                   T* grad_kernels, T* grad_offsets_x,
                                   T* grad_offsets_y, void* scratch) {
  const int64_t image_size = s.batch * s.in_height * s.in_width * s.channels;
  cudaError_t status = Launch(ParamGradKernel<T>, s.out_pixels(), stream, s,
                              image, kernels, offsets_x, offsets_y,
                              grad_output, grad_kernels, grad_offsets_x,
                              grad_offsets_y);
  if (status != cudaSuccess) return status;

  if constexpr (!NeedsImageGradScratch<T>()) {
    status = cudaMemsetAsync(grad_image, 0, image_size * sizeof(T), stream);
    if (status != cudaSuccess) return status;
    return Launch(ImageGradKernel<T, AtomicAdd>, s.out_pixels(), stream, s,
                  kernels, offsets_x, offsets_y, grad_output, grad_image,
                  AtomicAdd());
  } else {
    Acc<T>* wide = static_cast<Acc<T>*>(scratch);
    status = cudaMemsetAsync(wide, 0, ImageGradScratchBytes<T>(s), stream);
    if (status != cudaSuccess) return status;
    status = Launch(ImageGradKernel<T, ScratchAtomicAdd<T>>, s.out_pixels(),
                    stream, s, kernels, offsets_x, offsets_y, grad_output,
                    grad_image, ScratchAtomicAdd<T>{grad_image, wide});
    if (status != cudaSuccess) return status;
    return Launch(NarrowKernel<T>, image_size, stream, image_size,
                  static_cast<const Acc<T>*>(wide), grad_image);
  }
}

}  // namespace gpu
}  // namespace car_tf

#endif  // CAR_TF_CUSTOM_OPS_CC_KERNELS_ADAPTIVE_RESAMPLE_GPU_CU_H_
