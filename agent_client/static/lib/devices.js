// Microphone and speaker lists for <select> elements.

export async function listAudioDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return {
    inputs: devices.filter((d) => d.kind === 'audioinput'),
    outputs: devices.filter((d) => d.kind === 'audiooutput'),
  };
}

export const canChooseSpeaker = 'setSinkId' in HTMLMediaElement.prototype;

/** Refills a select, keeping `selectedId` chosen when it is still there. */
export function fillDeviceSelect(select, devices, selectedId, fallbackLabel) {
  const options = devices.map((device, i) => {
    const option = document.createElement('option');
    option.value = device.deviceId;
    // Labels stay empty until the page has microphone permission.
    option.textContent = device.label || `${fallbackLabel} ${i + 1}`;
    return option;
  });
  if (!options.length) {
    const none = document.createElement('option');
    none.value = '';
    none.textContent = `No ${fallbackLabel.toLowerCase()} found`;
    options.push(none);
  }
  select.replaceChildren(...options);
  if (selectedId && devices.some((d) => d.deviceId === selectedId)) select.value = selectedId;
}

export const prefs = {
  get(key) {
    try {
      return localStorage.getItem(`hotline.${key}`);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(`hotline.${key}`, value);
    } catch {
      // Storage can be disabled; a preference is not worth an error.
    }
  },
};
