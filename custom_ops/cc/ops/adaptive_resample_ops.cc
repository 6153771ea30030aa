// Registration and shape functions of the adaptive resampler ops.

#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace car_tf {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

namespace {

// Prefixes a shape-inference error with the tensor it concerns, so that graph
// mode names the input just as the kernel's own checks do in eager mode.
absl::Status Named(const absl::Status& status, const char* name,
                   const char* requirement) {
  if (status.ok()) return status;
  return absl::InvalidArgumentError(absl::StrCat(
      name, " must ", requirement, ": ", status.message()));
}

// Checks the ranks, the shared batch dimension and the equal shapes of the
// three per-pixel tensors. Returns the merged [N, h, w, k*k] shape.
absl::Status MergeResampleInputs(InferenceContext* c, ShapeHandle* image,
                                 ShapeHandle* taps) {
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(0), 4, image), "image",
                           "be rank 4 [N, H, W, C]"));
  ShapeHandle kernels, offsets_x, offsets_y;
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(1), 4, &kernels), "kernels",
                           "be rank 4 [N, h, w, k*k]"));
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(2), 4, &offsets_x),
                           "offsets_x", "be rank 4 [N, h, w, k*k]"));
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(3), 4, &offsets_y),
                           "offsets_y", "be rank 4 [N, h, w, k*k]"));
  TF_RETURN_IF_ERROR(Named(c->Merge(kernels, offsets_x, taps), "offsets_x",
                           "have the shape of kernels"));
  TF_RETURN_IF_ERROR(Named(c->Merge(*taps, offsets_y, taps), "offsets_y",
                           "have the shape of kernels"));
  DimensionHandle batch;
  TF_RETURN_IF_ERROR(Named(
      c->Merge(c->Dim(*image, 0), c->Dim(*taps, 0), &batch), "kernels",
      "have the image's batch size"));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("AdaptiveResample")
    .Input("image: T")
    .Input("kernels: T")
    .Input("offsets_x: T")
    .Input("offsets_y: T")
    .Output("output: T")
    .Attr("offset_unit: float")
    .Attr("T: {half, float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle image, taps;
      TF_RETURN_IF_ERROR(MergeResampleInputs(c, &image, &taps));
      c->set_output(0, c->MakeShape({c->Dim(image, 0), c->Dim(taps, 1),
                                     c->Dim(taps, 2), c->Dim(image, 3)}));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Content adaptive resampling (CAR, Sun & Chen 2020): every output pixel is a
weighted sum of k*k bilinear samples of `image`, each displaced by its own
offset.

image: [N, H, W, C] high-resolution input.
kernels: [N, h, w, k*k] weights; tap t = i*k + j, i the row in the kernel.
offsets_x: [N, h, w, k*k] horizontal tap offsets, in units of offset_unit.
offsets_y: [N, h, w, k*k] vertical tap offsets, in units of offset_unit.
output: [N, h, w, C].
offset_unit: HR pixels per unit of offset (the scale factor, in CAR).
)doc");

REGISTER_OP("AdaptiveResampleGrad")
    .Input("image: T")
    .Input("kernels: T")
    .Input("offsets_x: T")
    .Input("offsets_y: T")
    .Input("grad_output: T")
    .Output("grad_image: T")
    .Output("grad_kernels: T")
    .Output("grad_offsets_x: T")
    .Output("grad_offsets_y: T")
    .Attr("offset_unit: float")
    .Attr("T: {half, float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle image, taps, grad_output;
      TF_RETURN_IF_ERROR(MergeResampleInputs(c, &image, &taps));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 4, &grad_output));
      c->set_output(0, image);
      c->set_output(1, taps);
      c->set_output(2, taps);
      c->set_output(3, taps);
      return absl::OkStatus();
    })
    .Doc(R"doc(
Gradients of AdaptiveResample with respect to all four inputs.
)doc");

}  // namespace car_tf
