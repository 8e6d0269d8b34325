"""A BLS pipeline: IMAGE goes through the Python model image_preprocess, then through the ONNX model
image_classification_model, both called with ``pb_utils.InferenceRequest(...).exec()``; the answer is the most
probable class: its LABEL (from the classifier's labels.txt), CLASS_ID and PROBABILITY."""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

PREPROCESS = "image_preprocess"
CLASSIFIER = "image_classification_model"


class TritonPythonModel:
    def initialize(self, args):
        self.model_config = json.loads(args["model_config"])
        labels = Path(args["model_repository"]).parent / CLASSIFIER / "labels.txt"
        self.labels = labels.read_text().splitlines() if labels.is_file() else []

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self.classify(request))
            except pb_utils.TritonModelException as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def classify(self, request):
        image = pb_utils.get_input_tensor_by_name(request, "IMAGE")
        pixels = self.call(PREPROCESS, [image], "PIXELS").as_numpy()
        batch = pb_utils.Tensor("INPUT0", pixels.reshape(1, *pixels.shape))
        probabilities = self.call(CLASSIFIER, [batch], "OUTPUT0").as_numpy()[0]
        best = int(np.argmax(probabilities))
        label = self.labels[best] if best < len(self.labels) else str(best)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("LABEL", np.array([label.encode("utf-8")], dtype=object)),
                pb_utils.Tensor("CLASS_ID", np.array([best], np.int32)),
                pb_utils.Tensor("PROBABILITY", np.array([probabilities[best]], np.float32)),
            ]
        )

    @staticmethod
    def call(model_name, inputs, output_name):
        infer_request = pb_utils.InferenceRequest(
            model_name=model_name, requested_output_names=[output_name], inputs=inputs
        )
        infer_response = infer_request.exec()
        if infer_response.has_error():
            raise pb_utils.TritonModelException(
                f"{model_name} failed: {infer_response.error().message()}"
            )
        return pb_utils.get_output_tensor_by_name(infer_response, output_name)
