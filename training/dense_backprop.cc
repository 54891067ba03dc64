#include "training/dense_backprop.h"

#include <ATen/ATen.h>

namespace starling::training {

bool DenseBackprop::supports(ModelKind kind) {
  return kind == ModelKind::logreg || kind == ModelKind::mlp;
}

DenseBackprop::DenseBackprop(const FlatParameters& flat, std::int64_t max_batch)
    : max_batch_(max_batch) {
  if (!supports(flat.layout().kind)) {
    throw std::logic_error("DenseBackprop: " + to_string(flat.layout().kind) +
                           " is not a dense ReLU network");
  }
  const auto& slots = flat.layout().tensors;
  const auto options = flat.values().options();
  // Layouts of dense networks are (weight, bias) pairs in order.
  for (std::size_t i = 0; i + 1 < slots.size(); i += 2) {
    Layer layer;
    layer.weight = flat.tensors()[i];
    layer.bias = flat.tensors()[i + 1];
    layer.weight_grad = flat.gradients().narrow(0, slots[i].offset, slots[i].numel).view(slots[i].shape);
    layer.bias_grad =
        flat.gradients().narrow(0, slots[i + 1].offset, slots[i + 1].numel).view(slots[i + 1].shape);
    const std::int64_t units = slots[i].shape[0];
    layer.output = at::empty({max_batch, units}, options);
    layer.output_grad = at::empty({max_batch, units}, options);
    layers_.push_back(std::move(layer));
  }
  log_probabilities_ = at::empty({max_batch, kClasses}, options);
  minus_ones_ = at::full({max_batch, 1}, -1.0f, options);
}

double DenseBackprop::forward_backward(const at::Tensor& images, const at::Tensor& labels) {
  const std::int64_t n = images.size(0);
  if (n > max_batch_) throw std::logic_error("DenseBackprop: batch larger than max_batch");
  // No autograd: gradients are computed below. InferenceMode also skips the version-counter
  // and view tracking work of the dispatcher.
  at::InferenceMode no_autograd;

  // Forward: h_k = relu(h_{k-1} W_k^T + b_k), no ReLU after the last layer.
  std::vector<at::Tensor> outputs;
  at::Tensor input = images;
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    at::Tensor out = layers_[k].output.narrow(0, 0, n);
    at::addmm_out(out, layers_[k].bias, input, layers_[k].weight.t());
    if (k + 1 < layers_.size()) out.relu_();
    outputs.push_back(out);
    input = out;
  }

  // Mean cross-entropy and its gradient: d loss / d logits = (softmax - onehot(label)) / n.
  at::Tensor log_p = log_probabilities_.narrow(0, 0, n);
  at::_log_softmax_out(log_p, outputs.back(), 1, false);
  const at::Tensor label_column = labels.unsqueeze(1);
  const double loss = -log_p.gather(1, label_column).sum().item<double>() / static_cast<double>(n);
  at::Tensor grad = layers_.back().output_grad.narrow(0, 0, n);
  at::exp_out(grad, log_p);
  grad.scatter_add_(1, label_column, minus_ones_.narrow(0, 0, n));
  grad.mul_(1.0 / static_cast<double>(n));

  // Backward, last layer first. Each weight gradient is one GEMM into its flat-buffer slot.
  for (std::size_t k = layers_.size(); k-- > 0;) {
    const at::Tensor layer_input = k == 0 ? images : outputs[k - 1];
    at::mm_out(layers_[k].weight_grad, grad.t(), layer_input);
    at::sum_out(layers_[k].bias_grad, grad, {0});
    if (k == 0) break;  // the images need no gradient
    at::Tensor input_grad = layers_[k - 1].output_grad.narrow(0, 0, n);
    at::mm_out(input_grad, grad, layers_[k].weight);
    // ReLU backward: zero where the (already ReLU'd) activation is zero.
    at::threshold_backward_out(input_grad, input_grad, outputs[k - 1], 0);
    grad = input_grad;
  }
  return loss;
}

}  // namespace starling::training
