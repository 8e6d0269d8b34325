"""An identity model without config.pbtxt: auto_complete_config declares one input and output per datatype
named in the model's config parameter ``DATATYPE`` (FP32 by default), batching up to 8, dynamic batching."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        config = auto_complete_model_config.as_dict()
        datatype = config.get("parameters", {}).get("DATATYPE", {}).get("string_value", "TYPE_FP32")
        auto_complete_model_config.add_input({"name": "INPUT0", "data_type": datatype, "dims": [-1]})
        auto_complete_model_config.add_output({"name": "OUTPUT0", "data_type": datatype, "dims": [-1]})
        auto_complete_model_config.set_max_batch_size(8)
        auto_complete_model_config.set_dynamic_batching()
        return auto_complete_model_config

    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", np.array(data))]))
        return responses
