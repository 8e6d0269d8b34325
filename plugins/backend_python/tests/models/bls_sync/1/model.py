"""Triton's synchronous BLS example, written the way its documentation writes it: forwards INPUT0 and INPUT1
to the model named by MODEL_NAME and answers with that model's OUTPUT0 and OUTPUT1."""

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            model_name = pb_utils.get_input_tensor_by_name(request, "MODEL_NAME")
            model_name_string = model_name.as_numpy()[0]
            if isinstance(model_name_string, bytes):
                model_name_string = model_name_string.decode("utf-8")
            infer_request = pb_utils.InferenceRequest(
                model_name=model_name_string,
                requested_output_names=["OUTPUT0", "OUTPUT1"],
                inputs=[
                    pb_utils.get_input_tensor_by_name(request, "INPUT0"),
                    pb_utils.get_input_tensor_by_name(request, "INPUT1"),
                ],
            )
            infer_response = infer_request.exec()
            if infer_response.has_error():
                raise pb_utils.TritonModelException(infer_response.error().message())
            inference_response = pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.get_output_tensor_by_name(infer_response, "OUTPUT0"),
                    pb_utils.get_output_tensor_by_name(infer_response, "OUTPUT1"),
                ]
            )
            responses.append(inference_response)
        return responses
