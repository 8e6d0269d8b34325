"""BLS to a decoupled model from an ``async def execute``: ``await async_exec(decoupled=True)`` and ``async
for`` over the repeat model's stream, summing OUT (the empty final response is skipped)."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    async def execute(self, requests):
        responses = []
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, "IN")
            infer_request = pb_utils.InferenceRequest(
                model_name="repeat", requested_output_names=["OUT"], inputs=[values]
            )
            total = 0
            count = 0
            async for infer_response in await infer_request.async_exec(decoupled=True):
                if infer_response.has_error():
                    raise pb_utils.TritonModelException(infer_response.error().message())
                if not infer_response.output_tensors():
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
