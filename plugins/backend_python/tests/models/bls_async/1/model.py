"""Triton's asynchronous BLS example, written the way its documentation writes it: an ``async def
execute`` sends two requests to add_sub at once (asyncio.gather) and answers with OUTPUT0 of the first
(INPUT0 + INPUT1) and OUTPUT1 of the second (INPUT1 - INPUT0)."""

import asyncio

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    async def execute(self, requests):
        responses = []
        for request in requests:
            in_0 = pb_utils.get_input_tensor_by_name(request, "INPUT0")
            in_1 = pb_utils.get_input_tensor_by_name(request, "INPUT1")
            first = pb_utils.InferenceRequest(
                model_name="add_sub", requested_output_names=["OUTPUT0"], inputs=[in_0, in_1]
            )
            second = pb_utils.InferenceRequest(
                model_name="add_sub",
                requested_output_names=["OUTPUT1"],
                inputs=[pb_utils.Tensor("INPUT0", in_1.as_numpy()), pb_utils.Tensor("INPUT1", in_0.as_numpy())],
            )
            first_response, second_response = await asyncio.gather(first.async_exec(), second.async_exec())
            for infer_response in (first_response, second_response):
                if infer_response.has_error():
                    raise pb_utils.TritonModelException(infer_response.error().message())
            responses.append(
                pb_utils.InferenceResponse(
                    [
                        pb_utils.get_output_tensor_by_name(first_response, "OUTPUT0"),
                        pb_utils.get_output_tensor_by_name(second_response, "OUTPUT1"),
                    ]
                )
            )
        return responses
