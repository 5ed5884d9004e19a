// Loads a SavedModel with tensorflow::LoadSavedModel -- the C++ loader TensorFlow Serving calls
// -- and runs one signature, as the model server would. Build and use (TFD = the installed
// `tensorflow` Python package directory; see shared/notes/stack.md §3):
//
//   g++ -I$TFD/include -D_GLIBCXX_USE_CXX11_ABI=1 --std=c++17 -DEIGEN_MAX_ALIGN_BYTES=64 \
//     serving/cc_loader_check.cc -o cc_loader_check -L$TFD -Wl,--no-as-needed \
//     -l:libtensorflow_framework.so.2 -l:libtensorflow_cc.so.2 -Wl,-rpath,$TFD
//   ./cc_loader_check EXPORT_DIR sample num_samples=int32:3 seed=int64:7
//   ./cc_loader_check EXPORT_DIR sample_seeds seeds=int64s:7,8,9
//   ./cc_loader_check EXPORT_DIR serving_default latents=float32zeros:2,100
//   ./cc_loader_check EXPORT_DIR serving_default latents=float32zeros:2,100 labels=int32s:7,7
//   ./cc_loader_check EXPORT_DIR sample num_samples=int32:3 seed=int64:7 label=int32:7
//   ./cc_loader_check EXPORT_DIR class_names
//
// (The last three: a class-conditional export.)
//
// Prints one line per output: `alias dtype shape checksum` (checksum: the sum of uint8 values,
// or the total bytes of strings). Exit status: 0 ok, 2 load failed, 3 run failed (the status
// is printed, e.g. `RUN INVALID_ARGUMENT: ...`), 4 bad command line.

#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/public/session.h"

namespace {

std::vector<int64_t> ParseNumbers(const std::string& text) {
  std::vector<int64_t> numbers;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) numbers.push_back(std::stoll(item));
  return numbers;
}

bool MakeTensor(const std::string& kind, const std::string& values, tensorflow::Tensor* out) {
  const std::vector<int64_t> numbers = ParseNumbers(values);
  if (kind == "int32" && numbers.size() == 1) {
    *out = tensorflow::Tensor(tensorflow::DT_INT32, tensorflow::TensorShape({}));
    out->scalar<int32_t>()() = static_cast<int32_t>(numbers[0]);
  } else if (kind == "int64" && numbers.size() == 1) {
    *out = tensorflow::Tensor(tensorflow::DT_INT64, tensorflow::TensorShape({}));
    out->scalar<int64_t>()() = numbers[0];
  } else if (kind == "int32s") {
    *out = tensorflow::Tensor(tensorflow::DT_INT32,
                              tensorflow::TensorShape({static_cast<int64_t>(numbers.size())}));
    for (size_t i = 0; i < numbers.size(); ++i) {
      out->vec<int32_t>()(i) = static_cast<int32_t>(numbers[i]);
    }
  } else if (kind == "int64s") {
    *out = tensorflow::Tensor(tensorflow::DT_INT64,
                              tensorflow::TensorShape({static_cast<int64_t>(numbers.size())}));
    for (size_t i = 0; i < numbers.size(); ++i) out->vec<int64_t>()(i) = numbers[i];
  } else if (kind == "float32zeros" && numbers.size() == 2) {
    *out = tensorflow::Tensor(tensorflow::DT_FLOAT,
                              tensorflow::TensorShape({numbers[0], numbers[1]}));
    out->flat<float>().setZero();
  } else {
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " EXPORT_DIR SIGNATURE [name=kind:values ...]\n";
    return 4;
  }
  tensorflow::SavedModelBundle bundle;
  tensorflow::SessionOptions session_options;
  tensorflow::RunOptions run_options;
  tensorflow::Status status = tensorflow::LoadSavedModel(session_options, run_options, argv[1],
                                                         {"serve"}, &bundle);
  if (!status.ok()) {
    std::cout << "LOAD " << status.ToString() << "\n";
    return 2;
  }
  const auto& signatures = bundle.meta_graph_def.signature_def();
  const auto found = signatures.find(argv[2]);
  if (found == signatures.end()) {
    std::cout << "RUN NOT_FOUND: no signature " << argv[2] << "\n";
    return 3;
  }
  const tensorflow::SignatureDef& signature = found->second;
  std::vector<std::pair<std::string, tensorflow::Tensor>> feeds;
  for (int i = 3; i < argc; ++i) {
    const std::string argument = argv[i];
    const size_t equals = argument.find('=');
    const size_t colon = argument.find(':', equals);
    if (equals == std::string::npos || colon == std::string::npos) return 4;
    const std::string name = argument.substr(0, equals);
    tensorflow::Tensor tensor;
    if (!signature.inputs().count(name) ||
        !MakeTensor(argument.substr(equals + 1, colon - equals - 1), argument.substr(colon + 1),
                    &tensor)) {
      std::cerr << "bad input " << argument << "\n";
      return 4;
    }
    feeds.emplace_back(signature.inputs().at(name).name(), tensor);
  }
  std::vector<std::string> aliases, fetches;
  for (const auto& output : signature.outputs()) {
    aliases.push_back(output.first);
    fetches.push_back(output.second.name());
  }
  std::vector<tensorflow::Tensor> outputs;
  status = bundle.session->Run(feeds, fetches, {}, &outputs);
  if (!status.ok()) {
    std::cout << "RUN " << status.ToString() << "\n";
    return 3;
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    const tensorflow::Tensor& tensor = outputs[i];
    int64_t checksum = 0;
    if (tensor.dtype() == tensorflow::DT_UINT8) {
      const auto values = tensor.flat<uint8_t>();
      for (int64_t j = 0; j < values.size(); ++j) checksum += values(j);
    } else if (tensor.dtype() == tensorflow::DT_STRING) {
      const auto values = tensor.flat<tensorflow::tstring>();
      for (int64_t j = 0; j < values.size(); ++j) checksum += values(j).size();
    }
    std::cout << aliases[i] << " " << tensorflow::DataTypeString(tensor.dtype()) << " "
              << tensor.shape().DebugString() << " " << checksum << "\n";
  }
  return 0;
}
