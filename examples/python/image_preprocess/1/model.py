"""Preprocessing: an RGB image of any size (UINT8, height x width x 3) becomes the classifier's input,
FP32 [3, 224, 224]: resized (nearest neighbour), scaled to [0, 1], normalized with the ImageNet mean and
standard deviation, channels first. Plain numpy, as a Triton Python model."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

SIZE = 224
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        output_config = pb_utils.get_output_config_by_name(config, "PIXELS")
        self.output_dtype = pb_utils.triton_string_to_numpy(output_config["data_type"])

    def execute(self, requests):
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            height, width = image.shape[0], image.shape[1]
            if height == 0 or width == 0:
                error = pb_utils.TritonError("IMAGE must not be empty", pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            rows = (np.arange(SIZE) * height // SIZE).clip(0, height - 1)
            cols = (np.arange(SIZE) * width // SIZE).clip(0, width - 1)
            resized = image[rows][:, cols].astype(np.float32) / 255.0
            pixels = (resized.transpose(2, 0, 1) - MEAN) / STD
            output = pb_utils.Tensor("PIXELS", pixels.astype(self.output_dtype))
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
