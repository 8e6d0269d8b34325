"""A model that fails on purpose, by X: 1 raises an exception, 2 answers an InferenceResponse with a
TritonError (INVALID_ARG), 3 returns no response, 4 kills its own process; anything else gives Y = 10 X."""

import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = int(pb_utils.get_input_tensor_by_name(request, "X").as_numpy().reshape(-1)[0])
            if x == 1:
                raise ValueError("x is one")
            if x == 2:
                error = pb_utils.TritonError("x is two", pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            if x == 3:
                return []
            if x == 4:
                os._exit(3)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", np.array([[10 * x]], np.int32))]))
        return responses
