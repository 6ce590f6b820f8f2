include $(sort $(wildcard $(BR2_EXTERNAL_FIRMWARE_AGENT_PATH)/package/*/*.mk))
