"""A decoupled streaming model, the shape of an LLM's token stream: TEXT is split into words and each word
is sent as its own response (TOKEN, with its INDEX) DELAY_MS milliseconds apart (a config parameter), then
the final flag. Clients read it with gRPC streaming."""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        if not pb_utils.using_decoupled_model_transaction_policy(config):
            raise pb_utils.TritonModelException("token_stream needs model_transaction_policy { decoupled: true }")
        delay = config.get("parameters", {}).get("DELAY_MS", {}).get("string_value", "0")
        self.delay_s = float(delay) / 1000.0

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            text = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)[0]
            words = text.decode("utf-8", "replace").split()
            for index, word in enumerate(words):
                if index:
                    time.sleep(self.delay_s)
                response = pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("TOKEN", np.array([word.encode("utf-8")], dtype=object)),
                        pb_utils.Tensor("INDEX", np.array([index], np.int32)),
                    ]
                )
                sender.send(response)
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
