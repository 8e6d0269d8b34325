"""BLS to a decoupled model, as Triton's documentation shows it: ``exec(decoupled=True)`` on the repeat
model, summing the streamed OUT values (the stream ends with an empty final response, skipped)."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, "IN")
            infer_request = pb_utils.InferenceRequest(
                model_name="repeat", requested_output_names=["OUT", "IDX"], inputs=[values]
            )
            total = 0
            count = 0
            for infer_response in infer_request.exec(decoupled=True):
                if infer_response.has_error():
                    raise pb_utils.TritonModelException(infer_response.error().message())
                if len(infer_response.output_tensors()) == 0:
                    continue
                total += int(pb_utils.get_output_tensor_by_name(infer_response, "OUT").as_numpy()[0])
                count += 1
            responses.append(
                pb_utils.InferenceResponse(
                    [pb_utils.Tensor("SUM", np.array([total], np.int32)),
                     pb_utils.Tensor("COUNT", np.array([count], np.int32))]
                )
            )
        return responses
