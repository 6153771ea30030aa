// OpKernels of the adaptive resampler: input validation, allocation, and the
// CPU functors. The per-pixel math lives in adaptive_resample.h.

#define EIGEN_USE_THREADS

#include "custom_ops/cc/kernels/adaptive_resample_op.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "custom_ops/cc/kernels/adaptive_resample.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace car_tf {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using CPUDevice = Eigen::ThreadPoolDevice;

absl::Status ValidateResampleInputs(const Tensor& image, const Tensor& kernels,
                                    const Tensor& offsets_x,
                                    const Tensor& offsets_y,
                                    float offset_unit, ResampleShape* shape) {
  using ::tensorflow::errors::InvalidArgument;
  if (image.dims() != 4) {
    return InvalidArgument("image must be rank 4 [N, H, W, C], got shape ",
                           image.shape().DebugString());
  }
  if (kernels.dims() != 4) {
    return InvalidArgument("kernels must be rank 4 [N, h, w, k*k], got shape ",
                           kernels.shape().DebugString());
  }
  if (offsets_x.shape() != kernels.shape()) {
    return InvalidArgument("offsets_x must have the shape of kernels ",
                           kernels.shape().DebugString(), ", got ",
                           offsets_x.shape().DebugString());
  }
  if (offsets_y.shape() != kernels.shape()) {
    return InvalidArgument("offsets_y must have the shape of kernels ",
                           kernels.shape().DebugString(), ", got ",
                           offsets_y.shape().DebugString());
  }
  if (kernels.dim_size(0) != image.dim_size(0)) {
    return InvalidArgument("kernels batch size ", kernels.dim_size(0),
                           " differs from image batch size ",
                           image.dim_size(0));
  }
  const int64_t taps = kernels.dim_size(3);
  const int64_t k = static_cast<int64_t>(std::llround(std::sqrt(
      static_cast<double>(taps))));
  if (taps < 1 || k * k != taps) {
    return InvalidArgument(
        "the last dimension of kernels must be a positive perfect square "
        "k*k, got ",
        taps);
  }
  if (!std::isfinite(offset_unit)) {
    return InvalidArgument("offset_unit must be finite, got ", offset_unit);
  }
  shape->batch = image.dim_size(0);
  shape->in_height = image.dim_size(1);
  shape->in_width = image.dim_size(2);
  shape->channels = image.dim_size(3);
  shape->out_height = kernels.dim_size(1);
  shape->out_width = kernels.dim_size(2);
  shape->kernel_size = k;
  shape->offset_unit = offset_unit;
  if (shape->out_pixels() == 0 || shape->channels == 0) {
    return absl::OkStatus();  // Empty result; nothing is read.
  }
  // REFLECT padding by k/2 mirrors around the edge pixel, which needs at
  // least k/2 + 1 pixels along each axis.
  if (shape->in_height <= shape->pad() || shape->in_width <= shape->pad()) {
    return InvalidArgument("image height and width must exceed k/2 = ",
                           shape->pad(), " for reflection padding, got ",
                           image.shape().DebugString(), " with k = ", k);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// CPU functors.

// Function multi-versioning for the float32 tap-block loops: the compiler
// builds each of them for AVX2 and for baseline x86-64, and the dynamic loader
// picks one per machine. AVX2 brings hardware gathers and wider vectors. FMA
// stays off, so both builds round identically. `flatten` inlines the header's
// per-pixel code into each build.
#if defined(__x86_64__) && defined(__linux__) && \
    (defined(__clang__) ? __clang_major__ >= 14 : defined(__GNUC__))
#define CAR_CPU_CLONES __attribute__((flatten, target_clones("avx2", "default")))
#else
#define CAR_CPU_CLONES __attribute__((flatten))
#endif

// Forward values of output pixels [begin, end). Needs TapBlocksFit(shape).
CAR_CPU_CLONES void ForwardBlockedPixels(const ResampleShape& shape,
                                         const TapTable& table,
                                         const float* image,
                                         const float* kernels,
                                         const float* offsets_x,
                                         const float* offsets_y, float* output,
                                         int64_t begin, int64_t end) {
  switch (shape.channels) {
    case 1:
      for (int64_t p = begin; p < end; ++p) {
        ForwardPixelBlocked<1>(shape, table, image, kernels, offsets_x,
                               offsets_y, output, p);
      }
      return;
    case 3:
      for (int64_t p = begin; p < end; ++p) {
        ForwardPixelBlocked<3>(shape, table, image, kernels, offsets_x,
                               offsets_y, output, p);
      }
      return;
    default:  // 4, as TapBlocksFit allows no other count.
      for (int64_t p = begin; p < end; ++p) {
        ForwardPixelBlocked<4>(shape, table, image, kernels, offsets_x,
                               offsets_y, output, p);
      }
  }
}

// All four gradients of output pixels [begin, end), which must cover whole
// images, one after the other. Needs TapBlocksFit(shape); grad_image must be
// zero on those images.
CAR_CPU_CLONES void BackwardBlockedPixels(
    const ResampleShape& shape, const TapTable& table, const float* image,
    const float* kernels, const float* offsets_x, const float* offsets_y,
    const float* grad_output, float* grad_image, float* grad_kernels,
    float* grad_offsets_x, float* grad_offsets_y, int64_t begin,
    int64_t end) {
  switch (shape.channels) {
    case 1:
      for (int64_t p = begin; p < end; ++p) {
        BackwardPixelBlocked<1>(shape, table, image, kernels, offsets_x,
                                offsets_y, grad_output, grad_image,
                                grad_kernels, grad_offsets_x, grad_offsets_y,
                                p);
      }
      return;
    case 3:
      for (int64_t p = begin; p < end; ++p) {
        BackwardPixelBlocked<3>(shape, table, image, kernels, offsets_x,
                                offsets_y, grad_output, grad_image,
                                grad_kernels, grad_offsets_x, grad_offsets_y,
                                p);
      }
      return;
    default:  // 4, as TapBlocksFit allows no other count.
      for (int64_t p = begin; p < end; ++p) {
        BackwardPixelBlocked<4>(shape, table, image, kernels, offsets_x,
                                offsets_y, grad_output, grad_image,
                                grad_kernels, grad_offsets_x, grad_offsets_y,
                                p);
      }
  }
}

template <typename T>
struct AdaptiveResampleForward<CPUDevice, T> {
  bool operator()(const CPUDevice& device, const ResampleShape& shape,
                  const T* image, const T* kernels, const T* offsets_x,
                  const T* offsets_y, T* output) {
    const double per_pixel = static_cast<double>(shape.taps());
    const Eigen::TensorOpCost cost(
        per_pixel * (2 + 4 * shape.channels) * sizeof(T),
        shape.channels * sizeof(T), per_pixel * (40 + 8 * shape.channels));
    if constexpr (std::is_same<T, float>::value) {
      if (TapBlocksFit(shape)) {
        const TapTable table(shape.kernel_size);
        device.parallelFor(shape.out_pixels(), cost,
                           [&](Eigen::Index begin, Eigen::Index end) {
                             ForwardBlockedPixels(shape, table, image, kernels,
                                                  offsets_x, offsets_y, output,
                                                  begin, end);
                           });
        return true;
      }
    }
    device.parallelFor(shape.out_pixels(), cost,
                       [&](Eigen::Index begin, Eigen::Index end) {
                         for (Eigen::Index p = begin; p < end; ++p) {
                           ResampleForwardPixel(shape, image, kernels,
                                                offsets_x, offsets_y, output,
                                                p);
                         }
                       });
    return true;
  }
};

template <typename T>
struct AdaptiveResampleBackward<CPUDevice, T> {
  bool operator()(const CPUDevice& device, const ResampleShape& shape,
                  const T* image, const T* kernels, const T* offsets_x,
                  const T* offsets_y, const T* grad_output, T* grad_image,
                  T* grad_kernels, T* grad_offsets_x, T* grad_offsets_y) {
    // The image gradient is a scatter. Each work unit below owns a slice of
    // grad_image and walks its output pixels in order, so there is no race,
    // and every grad_image element receives the same additions in the same
    // order whichever branch runs: the result is bitwise reproducible,
    // independent of the thread count.
    const int64_t plane_pixels = shape.out_height * shape.out_width;
    const int64_t image_size =
        shape.in_height * shape.in_width * shape.channels;
    const double taps = static_cast<double>(shape.taps());

    if (shape.batch >= device.numThreads()) {
      // Enough images to keep every thread busy: one unit per image locates
      // each tap once for all gradients.
      const Eigen::TensorOpCost image_cost(
          plane_pixels * taps * (3 + 4 * shape.channels) * sizeof(T),
          plane_pixels * taps * (3 + 4 * shape.channels) * sizeof(T),
          plane_pixels * taps * (40 + 22 * shape.channels));
      const auto for_images = [&](const auto& backward_pixels) {
        device.parallelFor(shape.batch, image_cost,
                           [&](Eigen::Index begin, Eigen::Index end) {
                             std::fill(grad_image + begin * image_size,
                                       grad_image + end * image_size, T(0));
                             backward_pixels(begin * plane_pixels,
                                             end * plane_pixels);
                           });
      };
      if constexpr (std::is_same<T, float>::value) {
        if (TapBlocksFit(shape)) {
          const TapTable table(shape.kernel_size);
          for_images([&](int64_t begin, int64_t end) {
            BackwardBlockedPixels(shape, table, image, kernels, offsets_x,
                                  offsets_y, grad_output, grad_image,
                                  grad_kernels, grad_offsets_x, grad_offsets_y,
                                  begin, end);
          });
          return true;
        }
      }
      const auto plain_add = [](T* target, T value) { *target += value; };
      for_images([&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) {
          ResampleBackwardPixel(shape, image, kernels, offsets_x, offsets_y,
                                grad_output, grad_image, grad_kernels,
                                grad_offsets_x, grad_offsets_y, p, plain_add);
        }
      });
      return true;
    }

    // Few images: spread the parameter gradients over pixels and the image
    // gradient over (image, channel) units.
    const Eigen::TensorOpCost param_cost(
        taps * (3 + 4 * shape.channels) * sizeof(T), 3 * taps * sizeof(T),
        taps * (40 + 14 * shape.channels));
    device.parallelFor(
        shape.out_pixels(), param_cost,
        [&](Eigen::Index begin, Eigen::Index end) {
          for (Eigen::Index p = begin; p < end; ++p) {
            ResampleParamGradPixel(shape, image, kernels, offsets_x,
                                   offsets_y, grad_output, grad_kernels,
                                   grad_offsets_x, grad_offsets_y, p);
          }
        });
    std::fill(grad_image, grad_image + shape.batch * image_size, T(0));
    const Eigen::TensorOpCost scatter_cost(
        plane_pixels * taps * 3 * sizeof(T), plane_pixels * taps * 4 * sizeof(T),
        plane_pixels * taps * 50);
    const auto plain_add = [](T* target, T value) { *target += value; };
    device.parallelFor(
        shape.batch * shape.channels, scatter_cost,
        [&](Eigen::Index begin, Eigen::Index end) {
          for (Eigen::Index unit = begin; unit < end; ++unit) {
            const int64_t n = unit / shape.channels;
            const int64_t c = unit % shape.channels;
            for (int64_t p = n * plane_pixels; p < (n + 1) * plane_pixels;
                 ++p) {
              ResampleImageGradPixel(shape, kernels, offsets_x, offsets_y,
                                     grad_output, grad_image, p, c, c + 1,
                                     plain_add);
            }
          }
        });
    return true;
  }
};

// ---------------------------------------------------------------------------
// OpKernels.

template <typename Device, typename T>
class AdaptiveResampleOp : public OpKernel {
 public:
  explicit AdaptiveResampleOp(OpKernelConstruction* context)
      : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("offset_unit", &offset_unit_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& image = context->input(0);
    const Tensor& kernels = context->input(1);
    const Tensor& offsets_x = context->input(2);
    const Tensor& offsets_y = context->input(3);
    ResampleShape shape;
    OP_REQUIRES_OK(context, ValidateResampleInputs(image, kernels, offsets_x,
                                                   offsets_y, offset_unit_,
                                                   &shape));
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0,
                                TensorShape({shape.batch, shape.out_height,
                                             shape.out_width, shape.channels}),
                                &output));
    if (output->NumElements() == 0) return;
    const bool launched = AdaptiveResampleForward<Device, T>()(
        context->eigen_device<Device>(), shape, image.flat<T>().data(),
        kernels.flat<T>().data(), offsets_x.flat<T>().data(),
        offsets_y.flat<T>().data(), output->flat<T>().data());
    OP_REQUIRES(context, launched,
                ::tensorflow::errors::Internal(
                    "AdaptiveResample: kernel launch failed; see the log for "
                    "the device error"));
  }

 private:
  float offset_unit_;
};

template <typename Device, typename T>
class AdaptiveResampleGradOp : public OpKernel {
 public:
  explicit AdaptiveResampleGradOp(OpKernelConstruction* context)
      : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("offset_unit", &offset_unit_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& image = context->input(0);
    const Tensor& kernels = context->input(1);
    const Tensor& offsets_x = context->input(2);
    const Tensor& offsets_y = context->input(3);
    const Tensor& grad_output = context->input(4);
    ResampleShape shape;
    OP_REQUIRES_OK(context, ValidateResampleInputs(image, kernels, offsets_x,
                                                   offsets_y, offset_unit_,
                                                   &shape));
    const TensorShape output_shape({shape.batch, shape.out_height,
                                    shape.out_width, shape.channels});
    OP_REQUIRES(context, grad_output.shape() == output_shape,
                ::tensorflow::errors::InvalidArgument(
                    "grad_output must have the output shape ",
                    output_shape.DebugString(), ", got ",
                    grad_output.shape().DebugString()));
    OP_REQUIRES_OK(context, CheckBackwardDeterminism<Device>());

    Tensor *grad_image, *grad_kernels, *grad_offsets_x, *grad_offsets_y;
    OP_REQUIRES_OK(context,
                   context->allocate_output(0, image.shape(), &grad_image));
    OP_REQUIRES_OK(context,
                   context->allocate_output(1, kernels.shape(), &grad_kernels));
    OP_REQUIRES_OK(context, context->allocate_output(2, kernels.shape(),
                                                     &grad_offsets_x));
    OP_REQUIRES_OK(context, context->allocate_output(3, kernels.shape(),
                                                     &grad_offsets_y));
    if (output_shape.num_elements() == 0) {
      // Nothing was sampled, so every gradient is zero.
      SetZero<Device>(context, grad_image);
      SetZero<Device>(context, grad_kernels);
      SetZero<Device>(context, grad_offsets_x);
      SetZero<Device>(context, grad_offsets_y);
      return;
    }
    const bool launched = AdaptiveResampleBackward<Device, T>()(
        context->eigen_device<Device>(), shape, image.flat<T>().data(),
        kernels.flat<T>().data(), offsets_x.flat<T>().data(),
        offsets_y.flat<T>().data(), grad_output.flat<T>().data(),
        grad_image->flat<T>().data(), grad_kernels->flat<T>().data(),
        grad_offsets_x->flat<T>().data(), grad_offsets_y->flat<T>().data());
    OP_REQUIRES(context, launched,
                ::tensorflow::errors::Internal(
                    "AdaptiveResampleGrad: kernel launch failed; see the log "
                    "for the device error"));
  }

 private:
  template <typename D>
  static void SetZero(OpKernelContext* context, Tensor* tensor) {
    if (tensor->NumElements() == 0) return;
    tensor->flat<T>().device(context->eigen_device<D>()) =
        tensor->flat<T>().constant(T(0));
  }

  float offset_unit_;
};

#define REGISTER_CPU(T)                                                  \
  REGISTER_KERNEL_BUILDER(                                               \
      Name("AdaptiveResample").Device(::tensorflow::DEVICE_CPU)          \
          .TypeConstraint<T>("T"),                                       \
      AdaptiveResampleOp<CPUDevice, T>);                                 \
  REGISTER_KERNEL_BUILDER(                                               \
      Name("AdaptiveResampleGrad").Device(::tensorflow::DEVICE_CPU)      \
          .TypeConstraint<T>("T"),                                       \
      AdaptiveResampleGradOp<CPUDevice, T>);

REGISTER_CPU(float);
REGISTER_CPU(double);
#undef REGISTER_CPU

#if GOOGLE_CUDA
using GPUDevice = Eigen::GpuDevice;
#define REGISTER_GPU(T)                                                  \
  REGISTER_KERNEL_BUILDER(                                               \
      Name("AdaptiveResample").Device(::tensorflow::DEVICE_GPU)          \
          .TypeConstraint<T>("T"),                                       \
      AdaptiveResampleOp<GPUDevice, T>);                                 \
  REGISTER_KERNEL_BUILDER(                                               \
      Name("AdaptiveResampleGrad").Device(::tensorflow::DEVICE_GPU)      \
          .TypeConstraint<T>("T"),                                       \
      AdaptiveResampleGradOp<GPUDevice, T>);

REGISTER_GPU(Eigen::half);
REGISTER_GPU(float);
REGISTER_GPU(double);
#undef REGISTER_GPU
#endif  // GOOGLE_CUDA

}  // namespace car_tf
